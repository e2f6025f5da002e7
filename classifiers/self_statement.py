"""Who enquirers say they are: "I work for the Ministry of Finance", "we are an NGO", "soy estudiante de doctorado".

Only a statement about the writer counts — a sentence in the first person that names where they
work, what they are, or what "we"/"our" organisation is. A ministry or a company merely mentioned
("the ministry published wrong totals") is no evidence of who is asking. The phrase found is
matched against the words that name kinds of organisation (shared with signatures), and quoted
as it stands, short and clean, as the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from classifiers.signature import sector_of_phrase
from classifiers.text import fold

MAX_PHRASE = 80  # characters of the statement quoted and matched
SCAN_CHARS = 4000  # people say who they are near the start (or in the signature, read elsewhere)

# Folded (lower-case, unaccented) openings of a statement about oneself, in the desk's languages.
# The phrase that follows (to the end of the clause) is what names the organisation or the role.
_OPENINGS = re.compile(
    r"(?:"
    # a form's field naming the writer's organisation: "Affiliation: Mississippi State University"
    r"\**(?:affiliation|organi[sz]ation|afiliacion|organizacion|organisme|organizacao|instituicao)\**\s*:\**\s*|"
    # English
    r"i (?:work|am working) (?:at|for|in)\b|i(?:'m| am) (?:an? |the )(?:[a-z-]+ ){0,3}?(?:at|from|with|of|in|for)\b(?= (?:the |an? )?[a-z])|"
    r"i(?:'m| am) from\b|"
    r"i(?:'m| am) (?:an? )(?=[a-z -]{0,40}(?:student|researcher|journalist|reporter|consultant|academic|professor|lecturer|"
    r"official|civil servant|public servant|developer at|freelancer))|"
    r"we(?:'re| are) (?:an? |the )|(?:our|my) (?=(?:organi[sz]ation|company|firm|ministry|department|agency|university|ngo|"
    r"non-profit|nonprofit|charity|foundation|newsroom|newspaper|startup|team at|municipality|council|government|institution|"
    r"research group|lab)\b)|on behalf of\b|here at\b|"
    # Spanish
    r"trabajo (?:en|para)\b|soy (?:una? )?[a-z ]{0,40}?(?:de|en)\b(?= (?:la |el |los |las |una? )?[a-z])|"
    r"soy (?:una? )?(?=(?:estudiante|investigador|investigadora|periodista|consultor|consultora|funcionario|funcionaria|profesor|"
    r"profesora)\b)|somos (?:una? |la |el )|(?:nuestra|nuestro) (?=(?:organizacion|empresa|institucion|ministerio|"
    r"municipio|alcaldia|universidad|fundacion|asociacion|ong)\b)|en nombre de\b|"
    # French
    r"je travaille (?:a|au|aux|pour|chez)\b|je suis (?:une? )?[a-z ]{0,40}?(?:a|au|chez|de)\b(?= (?:la |le |l'|une? )?[a-z])|"
    r"je suis (?:une? )?(?=(?:etudiant|etudiante|chercheur|chercheuse|journaliste|consultant|consultante|fonctionnaire|"
    r"doctorant|doctorante|professeur)\b)|nous sommes (?:une? |la |le )|(?:notre) (?=(?:organisation|entreprise|societe|"
    r"ministere|association|universite|fondation|ong|mairie|collectivite)\b)|au nom de\b|"
    # Portuguese
    r"trabalho (?:na|no|em|para)\b|sou (?:uma? )?[a-z ]{0,40}?(?:da|do|na|no|de)\b(?= (?:a |o |uma? )?[a-z])|"
    r"sou (?:uma? )?(?=(?:estudante|pesquisador|pesquisadora|jornalista|consultor|consultora|servidor|servidora|professor|"
    r"professora|doutorando|doutoranda)\b)|somos (?:uma? |a |o )|(?:nossa|nosso) (?=(?:organizacao|empresa|instituicao|"
    r"ministerio|prefeitura|universidade|fundacao|associacao|ong)\b)|em nome d[ao]\b"
    r")"
)
# Where an opening can start (matched first: the openings are tried only at these places).
_TRIGGERS = re.compile(r"(?<![\w'-])(?:i|we|our|my|on|here|trabajo|soy|somos|nuestr[ao]|en|je|nous|notre|au|trabalho|sou|"
                       r"nossa|nosso|em|affiliation|organi[sz]ation|afiliacion|organizacion|organisme|organizacao|instituicao)(?![\w-])")
_CLAUSE_END = re.compile(r"[.;:!?\n()]|,\s|\s-\s|\s(?:and|but|y|pero|et|mais|e|mas|which|que|who|where|donde|ou|o)\s")


# People writing for themselves say so in these words (a sector of its own: individual).
_FOR_THEMSELVES = re.compile(r"personal projects?|hobby project|as a hobby|(?:spare|free) time|as a private (?:citizen|individual)|"
                             r"proyecto personal|projet personnel|projeto pessoal")


@dataclass(frozen=True)
class SelfStatement:
    sector: str
    phrase: str  # the statement as written, short: "I work for the Ministry of Finance of Chile"


def _fold_in_place(text: str) -> str:
    """Lower-case and unaccented like ``classifiers.text.fold``, but character for character (line breaks kept), so a
    match in the folded text is quoted from the original at the same place."""
    return text.lower() if text.isascii() else text.lower().translate(_UNACCENT)


def _unaccent_table() -> dict[int, str]:
    table = {}
    for code in range(0xC0, 0x250):  # Latin-1 Supplement and Latin Extended-A/B: the desk's languages
        folded = fold(chr(code))
        if len(folded) == 1 and folded != chr(code):
            table[code] = folded
    return table


_UNACCENT = _unaccent_table()


def self_statement(text: str) -> SelfStatement | None:
    """The first statement in ``text`` by which the writer says who they are and that names a sector."""
    original = text[:SCAN_CHARS]
    folded = _fold_in_place(original)
    for trigger in _TRIGGERS.finditer(folded):
        match = _OPENINGS.match(folded, trigger.start())
        if match is None:
            continue
        rest = folded[match.end():match.end() + MAX_PHRASE]
        end = _CLAUSE_END.search(rest)
        clause_end = match.end() + (end.start() if end else len(rest))
        clause = folded[match.start():clause_end]
        sector = sector_of_phrase(clause)
        if sector is not None:
            return SelfStatement(sector, original[match.start():clause_end].strip(" *"))
    personal = _FOR_THEMSELVES.search(folded)
    if personal is not None:
        return SelfStatement("individual", original[personal.start():personal.end()])
    return None
