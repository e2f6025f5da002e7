"""The public enquiry form in the desk's languages, chosen by the browser's Accept-Language."""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Ask the helpdesk", "intro": "Write to us and we will answer by e-mail. Fields marked * are required.",
        "name": "Your name", "email": "Your e-mail address", "organisation": "Organisation (optional)", "subject": "Subject",
        "message": "Your question", "send": "Send", "website": "Leave this field empty",
        "thanks": "Thank you — we have your enquiry", "reference": "Your reference is",
        "next": "We will reply by e-mail to {email}, usually within two working days. Our e-mail will carry your ticket number.",
        "again": "Send another enquiry", "errors": "Please correct the fields below.", "required": "required",
        "not an e-mail address": "not an e-mail address", "too_many": "Too many enquiries from your network. Please try again later.",
        "expired": "The form expired; please send it again.", "unavailable": "We cannot take enquiries right now. Please try again in a few minutes.",
    },
    "es": {
        "title": "Consulte a la mesa de ayuda", "intro": "Escríbanos y le responderemos por correo electrónico. Los campos con * son obligatorios.",
        "name": "Su nombre", "email": "Su correo electrónico", "organisation": "Organización (opcional)", "subject": "Asunto",
        "message": "Su consulta", "send": "Enviar", "website": "Deje este campo vacío",
        "thanks": "Gracias: hemos recibido su consulta", "reference": "Su referencia es",
        "next": "Le responderemos por correo a {email}, normalmente en dos días hábiles. Nuestro correo llevará el número de su caso.",
        "again": "Enviar otra consulta", "errors": "Corrija los campos indicados.", "required": "obligatorio",
        "not an e-mail address": "no es un correo electrónico", "too_many": "Demasiadas consultas desde su red. Inténtelo más tarde.",
        "expired": "El formulario caducó; envíelo de nuevo.", "unavailable": "No podemos recibir consultas en este momento. Inténtelo en unos minutos.",
    },
    "fr": {
        "title": "Écrire au service d'assistance", "intro": "Écrivez-nous, nous vous répondrons par e-mail. Les champs marqués * sont obligatoires.",
        "name": "Votre nom", "email": "Votre adresse e-mail", "organisation": "Organisation (facultatif)", "subject": "Objet",
        "message": "Votre question", "send": "Envoyer", "website": "Laissez ce champ vide",
        "thanks": "Merci, nous avons bien reçu votre demande", "reference": "Votre référence est",
        "next": "Nous répondrons par e-mail à {email}, en général sous deux jours ouvrés. Notre e-mail portera le numéro de votre demande.",
        "again": "Envoyer une autre demande", "errors": "Veuillez corriger les champs ci-dessous.", "required": "obligatoire",
        "not an e-mail address": "adresse e-mail invalide", "too_many": "Trop de demandes depuis votre réseau. Réessayez plus tard.",
        "expired": "Le formulaire a expiré ; veuillez l'envoyer à nouveau.", "unavailable": "Nous ne pouvons pas recevoir de demandes pour l'instant. Réessayez dans quelques minutes.",
    },
    "pt": {
        "title": "Fale com o helpdesk", "intro": "Escreva-nos e responderemos por e-mail. Os campos com * são obrigatórios.",
        "name": "O seu nome", "email": "O seu e-mail", "organisation": "Organização (opcional)", "subject": "Assunto",
        "message": "A sua pergunta", "send": "Enviar", "website": "Deixe este campo vazio",
        "thanks": "Obrigado — recebemos a sua consulta", "reference": "A sua referência é",
        "next": "Responderemos por e-mail para {email}, normalmente em dois dias úteis. O nosso e-mail terá o número do seu pedido.",
        "again": "Enviar outra consulta", "errors": "Corrija os campos abaixo.", "required": "obrigatório",
        "not an e-mail address": "não é um endereço de e-mail", "too_many": "Demasiados pedidos da sua rede. Tente mais tarde.",
        "expired": "O formulário expirou; envie-o novamente.", "unavailable": "Não podemos receber consultas agora. Tente dentro de alguns minutos.",
    },
}


def pick_language(accept_language: str, offered: tuple[str, ...]) -> str:
    """The best of ``offered`` (that we have texts for) by the header's quality values; English otherwise."""
    choices: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language[:500].split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        language = tag.strip().split("-")[0].lower()
        if language in TEXTS and language in offered and quality > 0:
            choices.append((-quality, position, language))
    return min(choices)[2] if choices else "en"
