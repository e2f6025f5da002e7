"""The organisation a sender names in their signature, and the sector that suggests.

People write from free-mail addresses and still sign as "Dirección de Compras,
Municipio de Tlaxcala". The signature is the last few lines of the message;
each line is matched against words that name kinds of organisation in the
desk's languages. The nearest match to the end wins (a signature's
organisation line usually follows the name and the title).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from classifiers.text import fold

SIGNATURE_LINES = 12
SIGNATURE_LINE_CHARS = 100
CONFIDENCE = 0.75

# Folded (lower-case, no accents) patterns per sector; a line may match several: the first sector listed wins.
_PATTERNS: list[tuple[str, str]] = [
    ("media", r"newspaper|periodico|diario\b|journal\b|journaliste?|jornalista|periodista|reporter|redaccion|redaction|redacao|"
              r"\bnews\b|noticias|revista|magazine|gazette|tribune|\bradio\b|\btv\b|television|data desk"),
    ("academia", r"universit|universidad|universidade|\bcollege\b|faculty|facultad|faculte|faculdade|school of|"
                 r"research (centre|center|institute)|centro de investigacion|laboratoire|laboratorio|phd|doctoral|"
                 r"doctorant|doutorand|doctorand|professor|profesor|professeur|estudiante|etudiant|estudante|\bstudent\b|"
                 r"researcher|investigador|chercheu|pesquisador|lecturer|\bacademic\b"),
    ("multilateral_donor", r"development bank|world bank|banco (mundial|interamericano|africano)|banque (mondiale|africaine)|"
                           r"united nations|naciones unidas|nations unies|nacoes unidas|\bundp\b|\bpnud\b|unicef|"
                           r"foundation|fundacion|fondation|fundacao|european commission|commission europeenne|"
                           r"cooperation agency|agencia de cooperacion|\bgiz\b|usaid|\bfcdo\b"),
    ("government", r"ministry|ministerio|ministere|ministerio|secretaria|secretariat|department of|departamento de|"
                   r"departement|municipal|municipio|alcaldia|ayuntamiento|mairie|prefeitura|city of|city council|"
                   r"county|\bcouncil\b|gobierno|government|gouvernement|governo|treasury|tesoreria|hacienda|"
                   r"procurement (agency|authority|office)|direccion de compras|contraloria|tribunal de (cuentas|contas)|"
                   r"cour des comptes|state[- ]owned|empresa publica|public agency|agencia nacional|agence nationale|"
                   r"instituto nacional|national (agency|institute|office)|prefecture|region de|regiao|provinc|"
                   r"estado de|state of|federal|civil servant|public servant|funcionari|fonctionnaire|servidor publico"),
    ("civil_society", r"\bngo\b|\bong\b|\bosc\b|association|asociacion|associacao|observator|transparen|\bwatch\b|"
                      r"initiative|iniciativa|coalition|coalicion|colectivo|collectif|civil society|sociedad civil|"
                      r"societe civile|sociedade civil|ciudadan|citoyen|cidada|non[- ]profit|sin fines de lucro|"
                      r"sans but lucratif|open data (network|institute)"),
    ("private_sector", r"\bltd\b|limited|\binc\b|\bllc\b|gmbh|\bs\.?a\.?\b|\bsas\b|\bltda\b|\bsarl\b|consulting|"
                       r"consultores|consultoria|conseil\b|solutions|soluciones|solucoes|technolog|tecnolog|software|"
                       r"systems\b|sistemas\b|\bpartners?\b|analytics|\bconsultancy\b|\bvendor\b|startup|\baudit\b|assurance|"
                       r"\bcorp\b|corporation|company|consultant|freelance|empresa\b|entreprise|\bfirm\b"),
]
_COMPILED = [(sector, re.compile(pattern)) for sector, pattern in _PATTERNS]
_SIGN_OFF = re.compile(r"^(best|kind|warm)?\s*regards|^thanks|^thank you|^saludos|^atentamente|^cordialement|^bien a vous|"
                       r"^atenciosamente|^abracos|^obrigad|^gracias|^merci|^cheers|^--\s*$")


def sector_of_phrase(folded: str) -> str | None:
    """The sector a folded (lower-case, unaccented) phrase names, by the first kind of organisation it mentions."""
    for sector, pattern in _COMPILED:
        if pattern.search(folded):
            return sector
    return None


@dataclass(frozen=True)
class SignatureOrganisation:
    sector: str
    line: str  # the signature line that names the organisation


def signature_organisation(text: str) -> SignatureOrganisation | None:
    """The organisation named in the signature block at the end of ``text``, if any."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    block = lines[-SIGNATURE_LINES:]
    # A signature follows a sign-off ("Best regards," "Saludos," "--"); without one there is none to read:
    # the last lines of a message are its words (or its code), not who wrote it.
    for i in range(len(block) - 1, -1, -1):
        if _SIGN_OFF.search(fold(block[i])):
            block = block[i + 1 :]
            break
    else:
        return None
    for line in reversed(block):
        if not _looks_like_a_signature_line(line):
            continue
        sector = sector_of_phrase(fold(line))
        if sector is not None:
            return SignatureOrganisation(sector, line[:SIGNATURE_LINE_CHARS])
    return None


def _looks_like_a_signature_line(line: str) -> bool:
    """A name, a title, an organisation — not a sentence of a disclaimer or a fragment of one."""
    words = line.split()
    return (len(line) <= SIGNATURE_LINE_CHARS and len(words) <= 12 and line[0].isalpha() and not line[0].islower()
            and not line.rstrip().endswith((".", "?", "!", ";", ":")))
