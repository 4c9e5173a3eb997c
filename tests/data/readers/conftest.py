"""Tiny fixture files in each reader's format, written into ``tmp_path``."""

from pathlib import Path

import pytest

XSD = "http://www.w3.org/2001/XMLSchema#"

MMKB_FILES = {
    "FB15K/FB15K_EntityTriples.txt": (
        "/m/a /r/x /m/b .\n/m/b /r/y /m/c .\n/m/a /r/x /m/b .\n/m/c /r/x /m/a .\n"
    ),
    "FB15K/FB15K_NumericalTriples.txt": (
        "/m/a\t<http://rdf.freebase.com/ns/p.height>\t1.85\n"
        "/m/b\t<http://rdf.freebase.com/ns/p.pop>\t2837021.0\n"
        "/m/d\t<http://rdf.freebase.com/ns/p.height>\t-3.5\n"
        "/m/a\t<http://rdf.freebase.com/ns/p.height>\t1.85\n"
    ),
    "FB15K/FB15K_ImageIndex.txt": "/m/a\tFBIMG1\n/m/zzz\tFBIMG2\n/m/a\tFBIMG3\n",
    "DB15K/DB15K_EntityTriples.txt": (
        "<http://db/A> <http://db/rel1> <http://db/B> .\n"
        "<http://db/B> <http://db/rel2> <http://db/C> .\n"
        "<http://db/B> <http://db/rel2> <http://db/C> .\n"
    ),
    "DB15K/DB15K_NumericalTriples.txt": (
        f'<http://db/A> <http://db/birthYear> "1982"^^<{XSD}gYear> .\n'
        f'<http://db/A> <http://db/birthDate> "1982-05-03"^^<{XSD}date> .\n'
        f'<http://db/B> <http://db/area> "1.5e+03"^^<{XSD}double> .\n'
        f'<http://db/C> <http://db/founded> "194#-##-##"^^<{XSD}date> .\n'
        f'<http://db/A> <http://db/birthYear> "1982"^^<{XSD}gYear> .\n'
    ),
    "DB15K/DB15K_ImageIndex.txt": "<http://db/B>\tDBIMG1\n",
    "DB15K/DB15K_SameAsLink.txt": (
        "/m/a <SameAs> <http://db/A> .\n"
        "/m/b <SameAs> <http://db/B> .\n"
        "/m/e <SameAs> <http://db/C> .\n"
    ),
}

MMEA_FILES = {
    "ent_ids_1": "0\t/m/a\n1\t/m/b\n2\t/m/c\n",
    "ent_ids_2": "3\t<A>\n4\t<B>\n5\t<C>\n",
    "triples_1": "0\t0\t1\n1\t1\t2\n0\t0\t1\n",
    "triples_2": "3\t7\t4\n4\t5\t5\n",
    "ill_ent_ids": "0\t3\n1\t4\n",
    "training_attrs_1": "/m/a\tattrX\tattrY\n/m/zzz\tattrX\n/m/c\tattrX\n",
    "training_attrs_2": "<B>\tattrZ\n",
}

OPENEA_FILES = {
    "rel_triples_1": "db:A\tdb:r1\tdb:B\ndb:B\tdb:r2\tdb:C\ndb:A\tdb:r1\tdb:B\n",
    "rel_triples_2": "wd:Q1\twd:P1\twd:Q2\nwd:Q2\twd:P1\twd:Q3\n",
    "attr_triples_1": (
        "db:A\tdb:birthDate\t1982-05-03\n"
        "db:B\tdb:motto\tCan we fix it?\tYes we can\n"
        f'db:D\tdb:height\t"1.85"^^<{XSD}double>\n'
    ),
    "attr_triples_2": "wd:Q1\twd:P569\t1982\n",
    "ent_links": "db:A\twd:Q1\ndb:B\twd:Q2\ndb:C\twd:Q3\n",
    "721_5fold/1/train_links": "db:A\twd:Q1\n",
    "721_5fold/1/valid_links": "db:B\twd:Q2\n",
    "721_5fold/1/test_links": "db:C\twd:Q3\n",
    "721_5fold/2/train_links": "db:C\twd:Q3\n",
    "721_5fold/2/valid_links": "db:A\twd:Q1\n",
    "721_5fold/2/test_links": "db:B\twd:Q2\n",
}

TSV_PAIR_FILES = {
    "source/triples.tsv": "alice\tknows\tbob\nbob\tworks_at\tacme\n",
    "source/attributes.tsv": "alice\theight\t1.70\n",
    "target/triples.tsv": "A\tr\tB\nB\tr\tC\n",
    "links.tsv": "alice\tA\nbob\tB\n",
}


def write_files(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def write():
    """``write(root, {relative path: text})`` writes fixture files under ``root``."""
    return write_files


@pytest.fixture
def mmkb_root(tmp_path: Path) -> Path:
    """A two-KG mmkb layout: FB15K (3 triple entities) and DB15K with links."""
    return write_files(tmp_path / "mmkb", MMKB_FILES)


@pytest.fixture
def mmea_dir(tmp_path: Path) -> Path:
    """A processed MMEA directory with 3 + 3 entities and 2 links."""
    return write_files(tmp_path / "FB_DB", MMEA_FILES)


@pytest.fixture
def openea_dir(tmp_path: Path) -> Path:
    """An OpenEA pair directory: 4 + 3 entities, 3 links, two folds."""
    return write_files(tmp_path / "D_W_15K_V1", OPENEA_FILES)


@pytest.fixture
def tsv_pair_dir(tmp_path: Path) -> Path:
    """A TSV pair directory: source/, target/ and links.tsv."""
    return write_files(tmp_path / "mine", TSV_PAIR_FILES)


@pytest.fixture
def fixture_files() -> dict[str, dict[str, str]]:
    """The fixture files of every reader's layout, by layout name."""
    return {
        "mmkb": MMKB_FILES,
        "mmea": MMEA_FILES,
        "openea": OPENEA_FILES,
        "tsv": TSV_PAIR_FILES,
    }
