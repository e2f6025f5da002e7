from __future__ import annotations

import pytest

from classifiers.sector import SectorClassifier
from config.desk import load_desk
from config.settings import load_settings


@pytest.fixture(scope="module")
def sectors() -> SectorClassifier:
    desk = load_desk(load_settings(environ={}))
    return SectorClassifier(desk.taxonomy, desk.organisations)


@pytest.mark.parametrize(
    ("address", "sector", "organisation"),
    [
        ("a@finance.gov.uk", "government", "finance.gov.uk"),
        ("a@mail.finance.gov.uk", "government", "finance.gov.uk"),
        ("a@hacienda.gob.mx", "government", "hacienda.gob.mx"),
        ("a@minhacienda.gob.cl", "government", "minhacienda.gob.cl"),
        ("a@economie.gouv.fr", "government", "economie.gouv.fr"),
        ("a@treasury.go.ke", "government", "treasury.go.ke"),
        ("a@planejamento.gov.br", "government", "planejamento.gov.br"),
        ("a@county.gov", "government", "county.gov"),
        ("a@stanford.edu", "academia", "stanford.edu"),
        ("a@ucl.ac.uk", "academia", "ucl.ac.uk"),
        ("a@usp.edu.br", "academia", "usp.edu.br"),
        ("a@who.int", "multilateral_donor", "who.int"),
        ("a@opengovwatch.org", "civil_society", "opengovwatch.org"),
        ("a@procuresoft.com", "private_sector", "procuresoft.com"),
        ("a@data.worldbank.org", "multilateral_donor", "worldbank.org"),
        ("a@theguardian.com", "media", "theguardian.com"),
    ],
)
def test_domain_evidence(sectors: SectorClassifier, address: str, sector: str, organisation: str) -> None:
    result = sectors.classify(address)
    assert result.label.value == sector
    assert result.organisation_domain == organisation
    assert result.label.reasons
    assert address.split("@")[1] in result.label.reasons[0]


def test_registry_beats_generic_patterns(sectors: SectorClassifier) -> None:
    # worldbank.org would be civil_society by the generic .org hint
    result = sectors.classify("x@worldbank.org")
    assert result.label.value == "multilateral_donor"
    assert result.label.confidence > 0.9
    assert result.organisation_name == "World Bank"


@pytest.mark.parametrize("address", ["someone@gmail.com", "x@hotmail.com", "y@yahoo.fr", "z@outlook.com"])
def test_free_mail_is_no_organisation(sectors: SectorClassifier, address: str) -> None:
    result = sectors.classify(address)
    assert result.organisation_domain is None
    assert result.label.value == "individual"
    assert "free-mail" in result.label.reasons[0]


def test_pattern_needs_an_organisation_label(sectors: SectorClassifier) -> None:
    # "gov.uk" itself is not an organisation under gov.uk
    assert sectors.classify("a@gov.uk").label.value == "unknown"


def test_unknown_domain(sectors: SectorClassifier) -> None:
    result = sectors.classify("a@example.xyz")
    assert result.label.value == "unknown"


@pytest.mark.parametrize(
    "text",
    [
        "How do I validate my JSON against the schema? The tender and budget fields fail.",
        "Our research on public procurement shows missing award values. Could you help?",
    ],
)
def test_given_topic_words_and_no_evidence_then_the_sector_is_unknown(sectors: SectorClassifier, text: str) -> None:
    result = sectors.classify("", text)

    assert result.label.value == "unknown"


def test_given_a_self_statement_then_the_reason_quotes_it(sectors: SectorClassifier) -> None:
    result = sectors.classify("", "Hi, I work for the Ministry of Finance of Chile. Where do tenders go?")

    assert result.label.value == "government"
    assert result.label.reasons == ("the enquirer says 'I work for the Ministry of Finance of Chile' → government",)


def _icann_rules() -> list[str]:
    from publicsuffixlist import PSLFILE  # noqa: PLC0415

    rules = []
    for line in open(PSLFILE, encoding="utf-8"):
        line = line.strip()
        if "===END ICANN DOMAINS===" in line:
            break
        if line and not line.startswith("//"):
            rules.append(line.lstrip("!").replace("*.", "x."))  # wildcards and exceptions as a name under them
    return rules


def test_given_every_icann_rule_in_either_form_then_the_organisation_is_what_the_list_with_ascii_forms_says() -> None:
    # The suffixes are loaded in Unicode only (three times faster); a domain written in ASCII (xn--…) is looked up in
    # Unicode, label by label. Checked against the library loaded with every rule's ASCII form as well, as it was before.
    from publicsuffixlist import PublicSuffixList  # noqa: PLC0415

    from classifiers.sector import registrable_domain  # noqa: PLC0415

    reference = PublicSuffixList(only_icann=True, accept_unknown=False)
    rules = _icann_rules()
    assert len(rules) > 6000
    checked = 0
    for rule in rules:
        forms = {rule, rule.encode("idna").decode("ascii")} if not rule.isascii() else {rule}
        for suffix in forms:
            for domain in (suffix, f"org.{suffix}", f"mail.org.{suffix}"):
                assert registrable_domain(domain) == (reference.privatesuffix(domain) or domain), domain
                checked += 1
    assert checked > 18000
    # Labels IDNA 2003 refuses (ß, final sigma, a zero-width joiner) or that are no Punycode at all, under real suffixes
    for domain in ("mail.xn--strae-oqa.de", "mail.xn--zca.gov.uk", "mail.xn--3xa.gr", "mail.xn--1ug.com", "x.xn--bad-.gov.uk",
                   "x.xn--.com", "a.b.xn--strae-oqa.xn--55qx5d.cn", "xn--zz-invalid-.example"):
        assert registrable_domain(domain) == (reference.privatesuffix(domain) or domain), domain
