"""The acquisition interface ``Strategy.select(...) -> Selection`` and a registry.

Every strategy picks up to ``budget`` unlabelled source entities and proposes, for
each, a target (its best match among the unlabelled targets, except DS3 which works
on mutual-nearest-neighbour pairs). Labelled entities are always left out; callers
can leave out more (e.g. test entities, so a protocol never leaks test labels).
"""

import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Optional, Union

import torch
from torch import Tensor

from almea_pyg.metrics.similarity import DEFAULT_CHUNK_SIZE, topk_similarity
from almea_pyg.select.pool import keep_mask, merge_indices
from almea_pyg.typing import SimilarityMetric


@dataclass
class Selection:
    """Proposed pairs ``(source_index[k], target_index[k])`` in the strategy's order.

    ``score`` is the similarity of each proposed pair under the strategy's metric
    (the confidence shown to an oracle); the order is the strategy's priority.
    """

    source_index: Tensor
    target_index: Tensor
    score: Tensor

    def __len__(self) -> int:
        return self.source_index.numel()

    @property
    def pairs(self) -> Tensor:
        """The selection as a ``[2, n]`` link tensor."""
        return torch.stack([self.source_index, self.target_index])


@dataclass
class SelectionContext:
    """What a strategy gets after the checks: the entities still selectable."""

    source_emb: Tensor
    target_emb: Tensor
    labelled: Tensor
    budget: int
    source_candidates: Tensor
    target_candidates: Tensor
    source_degree: Optional[Tensor]
    target_degree: Optional[Tensor]
    generator: Optional[torch.Generator]


class Strategy(ABC):
    """Base class of acquisition strategies.

    Subclasses implement :meth:`_select` on a :class:`SelectionContext`; the checks,
    the exclusion of labelled entities and the empty cases live here.

    Args:
        metric: Similarity for best matches, ``"cosine"`` or ``"csls"``.
            (default: ``"cosine"``)
        csls_k: Neighbourhood size of CSLS. (default: ``3``)
        chunk_size: Rows per similarity block. (default: ``4096``)
    """

    #: Registry name.
    name: ClassVar[str] = ""

    def __init__(
        self,
        *,
        metric: SimilarityMetric = "cosine",
        csls_k: int = 3,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        if metric not in ("cosine", "csls"):
            raise ValueError(f"metric must be 'cosine' or 'csls', got {metric!r}")
        self.metric = metric
        self.csls_k = csls_k
        self.chunk_size = chunk_size
        #: What the last :meth:`select` decided besides its pairs, for a round's
        #: record (DS3: pool size, representatives); empty for most strategies.
        self.summary_: dict[str, Any] = {}

    def select(
        self,
        source_emb: Tensor,
        target_emb: Tensor,
        labelled: Tensor,
        budget: int,
        *,
        exclude_source: Optional[Tensor] = None,
        exclude_target: Optional[Tensor] = None,
        source_degree: Optional[Tensor] = None,
        target_degree: Optional[Tensor] = None,
        generator: Optional[torch.Generator] = None,
    ) -> Selection:
        """Pick up to ``budget`` pairs among the unlabelled, non-excluded entities.

        Args:
            source_emb: Source entity embeddings.
            target_emb: Target entity embeddings.
            labelled: Labelled pairs ``[2, L]`` (source row, target row); their
                entities are never selected.
            budget: Maximum number of pairs.
            exclude_source: More source indices to leave out.
            exclude_target: More target indices to leave out.
            source_degree: Source entity degrees (used by ``"degree"``).
            target_degree: Target entity degrees (used by ``"degree"``).
            generator: Random generator (used by ``"random"``).

        Shapes:
            source_emb: ``(N_s, d)``, target_emb: ``(N_t, d)``, labelled: ``(2, L)``
            -> three ``(n,)`` tensors with ``n <= budget``.
        """
        _check_arguments(source_emb, target_emb, labelled, budget)
        self.summary_ = {}
        device = source_emb.device
        labelled = labelled.to(device=device, dtype=torch.long)
        exclude_s = merge_indices(labelled[0], exclude_source)
        exclude_t = merge_indices(labelled[1], exclude_target)
        source_candidates = keep_mask(source_emb.size(0), exclude_s, device)
        target_candidates = keep_mask(target_emb.size(0), exclude_t, device)
        empty = Selection(
            torch.empty(0, dtype=torch.long, device=device),
            torch.empty(0, dtype=torch.long, device=device),
            source_emb.new_empty(0),
        )
        if budget == 0 or not source_candidates.any() or not target_candidates.any():
            return empty
        ctx = SelectionContext(
            source_emb,
            target_emb,
            labelled,
            budget,
            source_candidates.nonzero().view(-1),
            target_candidates.nonzero().view(-1),
            source_degree,
            target_degree,
            generator,
        )
        return self._select(ctx)

    @abstractmethod
    def _select(self, ctx: SelectionContext) -> Selection:
        """Select from ``ctx`` (at least one source and one target candidate)."""

    def best_matches(self, ctx: SelectionContext, k: int = 1) -> tuple[Tensor, Tensor]:
        """The ``k`` best target candidates of every source candidate.

        Returns ``(scores, target_index)``, both ``(n_sources, k')`` with
        ``k' = min(k, n_targets)``, target indices global.
        """
        scores, idx = topk_similarity(
            ctx.source_emb[ctx.source_candidates],
            ctx.target_emb[ctx.target_candidates],
            k,
            metric=self.metric,
            csls_k=self.csls_k,
            chunk_size=self.chunk_size,
        )
        return scores, ctx.target_candidates[idx]

    def _pick(self, ctx: SelectionContext, rows: Tensor) -> Selection:
        """A selection of the source candidates at positions ``rows``, best-matched."""
        scores, targets = self.best_matches(ctx)
        return Selection(ctx.source_candidates[rows], targets[rows, 0], scores[rows, 0])

    def extra_repr(self) -> str:
        return f"metric={self.metric!r}"

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.extra_repr()})"


def _check_arguments(
    source_emb: Tensor, target_emb: Tensor, labelled: Tensor, budget: int
) -> None:
    if source_emb.dim() != 2 or target_emb.dim() != 2:
        raise ValueError("select: embeddings must be 2-D [N, d] tensors")
    if labelled.dim() != 2 or labelled.size(0) != 2:
        raise ValueError(
            f"select: labelled must be [2, L], got {tuple(labelled.shape)}"
        )
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise ValueError(f"select: budget must be a non-negative int, got {budget!r}")


#: Strategies by name; :func:`strategy_resolver` also accepts classes and instances.
STRATEGIES: dict[str, type[Strategy]] = {}


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator adding a strategy to :data:`STRATEGIES` under ``cls.name``."""
    STRATEGIES[cls.name] = cls
    return cls


def strategy_resolver(
    query: Union[str, type[Strategy], Strategy], **kwargs: Any
) -> Strategy:
    """A strategy from a registry name, a :class:`Strategy` subclass or an instance.

    ``kwargs`` go to the constructor (not allowed with an instance); one the
    constructor does not take raises a ``ValueError`` that names the options it
    takes (e.g. ``alpha`` meant for DS3 given to ``"random"`` in a config).
    """
    if isinstance(query, Strategy):
        if kwargs:
            raise ValueError("strategy_resolver: kwargs given with a strategy instance")
        return query
    if isinstance(query, type) and issubclass(query, Strategy):
        cls = query
    elif isinstance(query, str) and query.lower() in STRATEGIES:
        cls = STRATEGIES[query.lower()]
    else:
        raise ValueError(
            f"unknown strategy {query!r}; choose one of {sorted(STRATEGIES)}, "
            f"a Strategy subclass or an instance"
        )
    _check_options(cls, kwargs)
    return cls(**kwargs)


_NAMED = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def strategy_options(cls: type[Strategy]) -> list[str]:
    """The keyword options a strategy's constructor takes: its own, and its
    bases' where it passes ``**kwargs`` on."""
    takes: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = list(inspect.signature(klass.__init__).parameters.values())[1:]
        takes += [p.name for p in params if p.kind in _NAMED and p.name not in takes]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return takes


def _check_options(cls: type[Strategy], kwargs: dict[str, Any]) -> None:
    """Raise a ``ValueError`` naming the options of ``cls`` if it takes none of
    some in ``kwargs``."""
    takes = strategy_options(cls)
    unknown = sorted(set(kwargs) - set(takes))
    if unknown:
        raise ValueError(
            f"strategy {cls.name!r} takes no option {', '.join(map(repr, unknown))}; "
            f"its options: {', '.join(takes) or 'none'}"
        )
