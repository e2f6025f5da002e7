from __future__ import annotations

import pytest

from classifiers.signature import signature_organisation


@pytest.mark.parametrize(
    ("text", "sector", "line"),
    [
        ("Hola, ¿cómo publico?\n\nSaludos,\nAna Ruiz\nDirección de Compras, Municipio de Tlaxcala", "government", "Dirección de Compras, Municipio de Tlaxcala"),
        ("Question.\n\nBest regards,\nJo Smith\nPhD candidate, University of Leeds", "academia", "PhD candidate, University of Leeds"),
        ("Bonjour,\n\nCordialement,\nMarie\nObservatoire citoyen de la commande publique", "civil_society", "Observatoire citoyen de la commande publique"),
        ("Hi\n\nThanks,\nSam\nProcureSoft Solutions Ltd", "private_sector", "ProcureSoft Solutions Ltd"),
        ("Olá\n\nAbraços,\nJoão, jornalista de dados\nFolha do Sul", "media", "João, jornalista de dados"),
        ("Hello\n\nRegards,\nGrace Liu\nProcurement Transparency, Province of British Columbia", "government", "Procurement Transparency, Province of British Columbia"),
    ],
)
def test_signature_names_an_organisation(text: str, sector: str, line: str) -> None:
    found = signature_organisation(text)
    assert found is not None
    assert (found.sector, found.line) == (sector, line)


def test_no_organisation_named() -> None:
    assert signature_organisation("Hi, where is the data?\n\nThanks,\nPedro") is None


def test_lines_above_the_sign_off_are_the_message_not_the_signature() -> None:
    text = "The ministry published wrong totals.\nCan you check?\n\nThanks,\nPedro"
    assert signature_organisation(text) is None
