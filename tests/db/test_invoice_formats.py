"""`billing invoice --customer ID --period P --format csv|pdf|text` gives the documents of the file mode for
the same contract and events (interfaces §2): both render through invoicing/render.py."""

from __future__ import annotations

import io

import pypdf
import pytest

from .support import TINY, event, write_lines


@pytest.fixture
def tiny_files(tmp_path):
    """TINY with usage from January to May 2026 (graduated review, both sites, the cap counting over months)."""
    contract = tmp_path / "tiny.pricing"
    contract.write_text(TINY, encoding="utf-8")
    events = write_lines(tmp_path / "events.jsonl", [
        event(n, f"2026-{1 + n % 5:02d}-{1 + n % 27:02d}T12:00:00Z", str(7 + n % 9), site="s1" if n % 3 else "s2",
              category="review" if n % 4 == 0 else "standard") for n in range(60)
    ] + [event("x", "2026-03-03T12:00:00Z", site="nowhere")])
    return contract, events


@pytest.fixture
def stored(cli, tiny_files):
    contract, events = tiny_files
    assert cli("db", "upgrade")[0] == 0
    assert cli("contract", "save", contract)[0] == 0
    status, _, err = cli("ingest", events)
    assert status == 0, err
    return tiny_files


def _both(cli, files, period: str, fmt: str, tmp_path) -> tuple[bytes, bytes]:
    contract, events = files
    outputs = []
    for name, source in (("file", ("--contract", contract, "--events", events)), ("db", ("--customer", "tiny"))):
        path = tmp_path / f"{name}.{fmt}"
        status, out, err = cli("invoice", *source, "--period", period, "--format", fmt, "--output", path)
        assert (status, out) == (0, ""), err
        outputs.append(path.read_bytes())
    return outputs[0], outputs[1]


@pytest.mark.parametrize("period", ["2026-01", "2026-03", "2026-05"])
@pytest.mark.parametrize("fmt", ["csv", "text"])
def test_database_mode_csv_and_text_equal_the_file_mode(cli, stored, tmp_path, period, fmt):
    from_files, from_db = _both(cli, stored, period, fmt, tmp_path)
    assert from_db == from_files
    assert b"not billed" in from_db if (fmt, period) == ("csv", "2026-03") else True


def _pdf_text(data: bytes) -> list[str]:
    return [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages]


def test_database_mode_pdf_reads_as_the_file_mode_pdf(cli, stored, tmp_path):
    from_files, from_db = _both(cli, stored, "2026-04", "pdf", tmp_path)
    assert from_db.startswith(b"%PDF")
    pages = _pdf_text(from_db)
    assert pages == _pdf_text(from_files)
    assert "DRAFT" in pages[0] and "Tiny Ltd" in pages[0]


def test_database_mode_pdf_to_a_path_that_cannot_be_written_is_refused(cli, stored, tmp_path):
    status, out, err = cli("invoice", "--customer", "tiny", "--period", "2026-04", "--format", "pdf",
                           "--output", tmp_path / "missing" / "x.pdf")
    assert (status, out) == (2, "") and "cannot write" in err


def test_database_mode_unknown_customer_is_refused_for_every_format(cli, stored):
    for fmt in ("pdf", "csv"):
        status, out, err = cli("invoice", "--customer", "nobody", "--period", "2026-04", "--format", fmt)
        assert (status, out) == (1, "") and "nobody" in err
