"""Reader of the raw MMKG files (github.com/mniepert/mmkb): FB15K, DB15K, YAGO15K.

One KG lives in a directory ``<root>/<NAME>/`` with

* ``<NAME>_EntityTriples.txt``: ``head relation tail .`` (mids such as
  ``/m/027rn`` or ``<http://...>`` URIs), duplicates dropped;
* ``<NAME>_NumericalTriples.txt`` (optional): FB15K's TAB-separated
  ``/m/xxx <attribute> value`` or the N-Triples
  ``<entity> <attribute> "value"^^<type> .`` of DB15K and YAGO15K; values are
  parsed by :func:`~almea_pyg.data.readers.literals.parse_value` (numbers, years,
  dates as year fractions, NaN otherwise), duplicate facts dropped;
* ``<NAME>_ImageIndex.txt`` (optional): ``entity<TAB>IMAGE_KEY``; only says which
  entities have an image upstream, kept as the bool mask
  ``kg["entity"].has_image_index`` (the VGG features themselves are not part of
  the repository: pass them as ``image_features`` to get an ``x_img`` modality);
* ``<NAME>_SameAsLink.txt`` (DB15K, YAGO15K): ``/m/xxx <SameAs> <uri> .``, the
  FB15K end first.

Identifiers are kept exactly as written (URIs with their angle brackets), so they
match the processed MMEA files built from the same data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from almea_pyg.data.errors import DataFormatError
from almea_pyg.data.pair import MMKGPair
from almea_pyg.data.readers._utils import (
    FeatureInput,
    PathLike,
    Vocabulary,
    attach_features,
    check_link_ends,
    iter_lines,
    iter_statements,
    iter_tab_fields,
    make_kg,
    require_file,
    split_feature_input,
    to_index_tensor,
    unique_columns,
)
from almea_pyg.data.readers.literals import lexical_form, parse_value
from almea_pyg.typing import ENTITY

logger = logging.getLogger(__name__)

#: The KG that every mmkb ``SameAsLink`` file links to (its first column).
HUB = "FB15K"


def mmkb_file(root: PathLike, name: str, kind: str) -> Path:
    """Path of ``<NAME>_<kind>.txt`` under ``root/<NAME>/`` (or ``root`` itself)."""
    root = Path(root)
    directory = root / name if (root / name).is_dir() else root
    return directory / f"{name}_{kind}.txt"


def read_entity_triples(
    path: PathLike, entities: Vocabulary, relations: Vocabulary
) -> Tensor:
    """Parse ``head relation tail .`` lines into unique ``(3, E)`` index triples.

    ``entities`` and ``relations`` are filled in order of first appearance.
    """
    heads: list[int] = []
    rels: list[int] = []
    tails: list[int] = []
    add_entity, add_relation = entities.add, relations.add
    for _, parts in iter_statements(path, "head relation tail ."):
        heads.append(add_entity(parts[0]))
        rels.append(add_relation(parts[1]))
        tails.append(add_entity(parts[2]))
    if not heads:
        raise DataFormatError(path, None, "no triples in file")
    triples = unique_columns(to_index_tensor((heads, rels, tails)))
    logger.info(
        "%s: %d triples (%d duplicate lines dropped), %d relations",
        Path(path).name,
        triples.size(1),
        len(heads) - triples.size(1),
        len(relations),
    )
    return triples


def _split_numerical(line: str) -> tuple[str, str, str | None] | None:
    if "\t" in line:
        parts = line.split("\t")
        if len(parts) == 4 and parts[3].strip() == ".":
            parts = parts[:3]
        if len(parts) != 3:
            return None
        return parts[0].strip(), parts[1].strip(), lexical_form(parts[2].strip())
    parts = line.split(" ", 2)
    if len(parts) != 3:
        return None
    literal = parts[2].strip()
    if literal.endswith(" ."):
        literal = literal[:-2].rstrip()
    return parts[0], parts[1], lexical_form(literal)


def read_numerical_triples(
    path: PathLike, entities: Vocabulary, attributes: Vocabulary
) -> tuple[Tensor, Tensor]:
    """Parse attribute facts into unique ``(entity, attribute)`` pairs and values.

    Returns:
        ``(facts (2, E_a), values (E_a,))``; a fact repeated with the same value
        is kept once.
    """
    values = Vocabulary()
    rows: tuple[list[int], list[int], list[int]] = ([], [], [])
    for number, line in iter_lines(path):
        fields = _split_numerical(line)
        if fields is None or fields[2] is None:
            raise DataFormatError(
                path,
                number,
                "expected 'entity attribute value' (TAB-separated) or "
                "'<entity> <attribute> \"value\"^^<type> .'",
            )
        rows[0].append(entities.add(fields[0]))
        rows[1].append(attributes.add(fields[1]))
        rows[2].append(values.add(fields[2]))
    facts = unique_columns(to_index_tensor(rows))
    parsed = torch.tensor(
        [parse_value(text) for text in values.tokens], dtype=torch.float
    )
    logger.info(
        "%s: %d attribute facts (%d duplicate lines dropped), %d attributes",
        Path(path).name,
        facts.size(1),
        len(rows[0]) - facts.size(1),
        len(attributes),
    )
    return facts[:2], parsed[facts[2]]


def read_image_index(path: PathLike) -> list[str]:
    """Entities listed in an ``entity<TAB>IMAGE_KEY`` file (repeats kept)."""
    entities = []
    for _, fields in iter_tab_fields(path, "entity<TAB>image_key"):
        entities.append(fields[0].strip())
    return entities


def read_same_as_links(path: PathLike) -> list[tuple[str, str]]:
    """Unique ``(first, second)`` identifier pairs of a ``SameAsLink`` file."""
    links: dict[tuple[str, str], None] = {}
    for number, parts in iter_statements(path, "a <SameAs> b ."):
        if "sameas" not in parts[1].lower():
            raise DataFormatError(
                path, number, f"expected a <SameAs> predicate, got {parts[1]!r}"
            )
        links[(parts[0], parts[2])] = None
    if not links:
        raise DataFormatError(path, None, "no links in file")
    return list(links)


def _read_kg(
    root: PathLike,
    name: str,
    *,
    image_features: FeatureInput | None,
    extra_entities: Iterable[str] = (),
) -> HeteroData:
    entities, relations, attributes = Vocabulary(), Vocabulary(), Vocabulary()
    triples = read_entity_triples(
        require_file(mmkb_file(root, name, "EntityTriples")), entities, relations
    )
    num_in_triples = len(entities)

    numerical = mmkb_file(root, name, "NumericalTriples")
    facts = values = None
    if numerical.is_file():
        facts, values = read_numerical_triples(numerical, entities, attributes)
    else:
        logger.warning("%s: not found, %s has no attributes", numerical, name)
    num_in_attributes = len(entities) - num_in_triples
    for token in extra_entities:
        entities.add(token)
    logger.info(
        "%s: %d entities (%d in triples, %d only in attributes, %d only in links)",
        name,
        len(entities),
        num_in_triples,
        num_in_attributes,
        len(entities) - num_in_triples - num_in_attributes,
    )

    kg = make_kg(
        entities.tokens,
        triples,
        relations.tokens,
        attribute_facts=facts,
        attribute_values=values,
        attribute_names=attributes.tokens if facts is not None else None,
    )
    image_index = mmkb_file(root, name, "ImageIndex")
    if image_index.is_file():
        listed = read_image_index(image_index)
        found = [entities.index.get(token, -1) for token in listed]
        index = torch.tensor(found, dtype=torch.long).view(-1)
        mask = torch.zeros(len(entities), dtype=torch.bool)
        mask[index[index >= 0]] = True
        kg[ENTITY].has_image_index = mask
        logger.info(
            "%s: %d entities have an image key (%d keys name no entity of the KG)",
            image_index.name,
            int(mask.sum()),
            int((index < 0).sum()),
        )
    if image_features is not None:
        ids, matrix = split_feature_input(image_features, f"{name} image_features")
        attach_features(kg, "img", ids, matrix, source=f"{name} image_features")
    return kg


def read_mmkb_kg(
    root: PathLike, name: str, *, image_features: FeatureInput | None = None
) -> HeteroData:
    """Read one mmkb KG (e.g. ``"DB15K"``) into a :class:`HeteroData`.

    Entities are those of the triples, then those only in attribute facts, in
    order of first appearance; ``kg["entity"].ids`` keeps their identifiers.

    Args:
        root (str or os.PathLike): The mmkb root (holding ``<name>/``) or the
            KG's own directory.
        name (str): The KG, the prefix of its file names (``"FB15K"``).
        image_features (dict or tuple, optional): Image vectors as
            ``{id: vector}`` or ``(ids, matrix)`` (e.g. mmkb's VGG16 features);
            stored L2-normalised as ``x_img`` with mask ``x_img_mask``.
    """
    return _read_kg(root, name, image_features=image_features)


def read_mmkb_pair(
    root: PathLike,
    source: str = "FB15K",
    target: str = "DB15K",
    *,
    image_features: Mapping[str, FeatureInput] | None = None,
    name: str | None = None,
) -> MMKGPair:
    """Read two mmkb KGs and their ``SameAsLink`` file into an unsplit pair.

    mmkb links FB15K with DB15K and with YAGO15K (``<OTHER>_SameAsLink.txt``, the
    FB15K end first), so one side must be ``"FB15K"``. Every linked entity
    exists in its KG: one absent from the triples and attributes is added as an
    isolated entity, with a warning saying how many; when that is so for more
    than half of the links, the links file belongs to other KGs (e.g.
    YAGO15K's put in as ``DB15K_SameAsLink.txt``) and a
    :class:`~almea_pyg.data.errors.DataFormatError` is raised.

    Args:
        root (str or os.PathLike): Directory holding ``FB15K/``, ``DB15K/``, ...
        source (str, optional): Source KG. (default: ``"FB15K"``)
        target (str, optional): Target KG. (default: ``"DB15K"``)
        image_features (dict, optional): Per KG name, image vectors as accepted
            by :func:`read_mmkb_kg`.
        name (str, optional): Pair name. (default: ``"<source>_<target>"``)
    """
    if HUB not in (source, target) or source == target:
        raise ValueError(
            f"mmkb links {HUB} with another KG; got source={source!r}, "
            f"target={target!r}"
        )
    other = target if source == HUB else source
    links_path = require_file(mmkb_file(root, other, "SameAsLink"))
    pairs = read_same_as_links(links_path)
    if source != HUB:
        pairs = [(b, a) for a, b in pairs]

    features = image_features or {}
    kgs, rows = [], []
    for side, kg_name in enumerate((source, target)):
        linked = [pair[side] for pair in pairs]
        kg = _read_kg(
            root,
            kg_name,
            image_features=features.get(kg_name),
            extra_entities=linked,
        )
        lookup = {token: i for i, token in enumerate(kg[ENTITY].ids)}
        kgs.append(kg)
        rows.append([lookup[token] for token in linked])
    links = to_index_tensor(rows)
    check_link_ends(links_path, links, ((source, kgs[0]), (target, kgs[1])))
    repeated = [links.size(1) - row.unique().numel() for row in links]
    if any(repeated):
        logger.info(
            "%s: links not one-to-one (%d repeated %s ends, %d repeated %s ends)",
            links_path.name,
            repeated[0],
            source,
            repeated[1],
            target,
        )
    return MMKGPair(kgs[0], kgs[1], links, name=name or f"{source}_{target}")
