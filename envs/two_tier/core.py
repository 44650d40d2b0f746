"""The batched two-tier core: B environments of one scenario in numpy arrays.

One :meth:`TwoTierCore.step` call advances all B environments through
:func:`envs.two_tier.kernels.step_batch`. :class:`envs.two_tier.TwoTierSchedulingEnv`
is the B = 1 view of this class and :class:`envs.vec_env.BatchedVecEnv` its SB3 face.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from datetime import UTC
from typing import Any

import numpy as np
from gymnasium import spaces
from omegaconf import OmegaConf

from envs.batched import BatchStep
from envs.checks import (
    check_actions,
    check_amount_rows,
    check_amounts,
    check_indices,
)
from envs.config import ScenarioConfig
from envs.datasets import HOURS_PER_YEAR, YEAR_START
from envs.errors import ConfigError
from envs.rng import seed_streams
from envs.scenario import (
    NODE_CORES,
    NODE_IS_EDGE,
    PAIR_BW_BPS,
    PAIR_EGRESS_USD_GB,
    PAIR_RTT_S,
    REG_CONTINENT,
    REG_CONTROLLED,
    REG_END,
    REG_START,
    TYPE_BYTES,
    TYPE_CARBON_REF,
    TYPE_COST_REF,
    TYPE_IN_GB,
    TYPE_NODE_CAPABLE,
    TYPE_NODE_COST_USD,
    TYPE_NODE_ENERGY_J,
    TYPE_NODE_EXEC_S,
    TYPE_OUT_GB,
    TYPE_SAME_CONTINENT,
    TYPE_SLO_S,
    World,
    compile_scenario,
    load_scenario,
)
from envs.two_tier import heuristics
from envs.two_tier import kernels as K
from envs.two_tier.config import RewardConfig, Tier, TwoTierEnvConfig
from envs.two_tier.layout import (
    NF_COST,
    NF_EXEC,
    NF_IS_EDGE,
    NF_VALID,
    NODE_FEATURES,
    PHASE_LB,
    REGION_FEATURES,
    RF_COST,
    RF_IS_ORIGIN,
    RF_RTT,
    RF_TRANSFER,
    RF_VALID,
    ObsLayout,
)
from envs.two_tier.live import ObservableState
from envs.units import parse_duration

_WORLD_CACHE: dict[str, World] = {}


def _world(cfg: ScenarioConfig) -> World:
    """Compile a scenario once per process (keyed by its canonical YAML)."""
    key = OmegaConf.to_yaml(OmegaConf.structured(cfg))
    world = _WORLD_CACHE.get(key)
    if world is None:
        world = compile_scenario(cfg)
        if len(_WORLD_CACHE) >= 4:
            _WORLD_CACHE.pop(next(iter(_WORLD_CACHE)))
        _WORLD_CACHE[key] = world
    return world


def static_tables(world: World, clip: float) -> tuple[np.ndarray, np.ndarray]:
    """Everything the kernels need that does not depend on the state.

    Returns ``tn[K, N, N_TN]`` (expected service seconds, inf where a node cannot
    serve the type, then the static node features) and ``reg_static[K, R, R, N_RS]``
    (indexed type, origin, serving region), normalised like the observation (by SLO
    and the type's reference cost and carbon) and clipped.
    """
    tn = world.type_node
    n_types, n_nodes = tn.shape[0], tn.shape[1]
    n_regions = world.n_regions
    capable = tn[:, :, TYPE_NODE_CAPABLE] > 0
    tf = world.type_f
    table = np.zeros((n_types, n_nodes, K.N_TN))
    table[:, :, K.TN_EXEC] = np.where(capable, tn[:, :, TYPE_NODE_EXEC_S], np.inf)
    table[:, :, K.TN_CAPABLE] = capable
    table[:, :, K.TN_EXEC_N] = tn[:, :, TYPE_NODE_EXEC_S] / tf[:, None, TYPE_SLO_S]
    table[:, :, K.TN_COST_N] = tn[:, :, TYPE_NODE_COST_USD] / tf[:, None, TYPE_COST_REF]
    table[:, :, K.TN_CARBON_COEF] = (
        tn[:, :, TYPE_NODE_ENERGY_J] / 3.6e6 / tf[:, None, TYPE_CARBON_REF]
    )
    table[:, :, K.TN_IS_EDGE] = world.node_f[None, :, NODE_IS_EDGE]
    table[:, :, K.TN_EXEC_N : K.TN_COST_N + 1] = np.minimum(
        table[:, :, K.TN_EXEC_N : K.TN_COST_N + 1], clip
    )
    reg_static = np.zeros((n_types, n_regions, n_regions, K.N_RS))
    pair = world.pair_f
    continent = world.region_i[:, REG_CONTINENT]
    for q in range(n_regions):
        lo, hi = world.region_i[q, REG_START], world.region_i[q, REG_END]
        reg_static[:, :, q, K.RS_INV_CORES] = (
            1.0 / world.node_f[lo:hi, NODE_CORES].sum()
        )
        reg_static[:, :, q, K.RS_INV_CAPACITY] = 1.0 / world.capacity_rps[q]
        for k in range(n_types):
            cap = capable[k, lo:hi]
            slo = tf[k, TYPE_SLO_S]
            for o in range(n_regions):
                resident = (
                    tf[k, TYPE_SAME_CONTINENT] == 0 or continent[o] == continent[q]
                )
                egress = (
                    tf[k, TYPE_IN_GB] * pair[o, q, PAIR_EGRESS_USD_GB]
                    + tf[k, TYPE_OUT_GB] * pair[q, o, PAIR_EGRESS_USD_GB]
                )
                st = reg_static[k, o, q]
                st[K.RS_VALID] = float(cap.any() and resident)
                st[K.RS_RTT] = min(pair[o, q, PAIR_RTT_S] / slo, clip)
                transfer = tf[k, TYPE_BYTES] / pair[o, q, PAIR_BW_BPS] / slo
                st[K.RS_TRANSFER] = min(transfer, clip)
                if cap.any():
                    cost = tn[k, lo:hi, TYPE_NODE_COST_USD][cap].min() + egress
                    st[K.RS_COST] = min(cost / tf[k, TYPE_COST_REF], clip)
                    energy = tn[k, lo:hi, TYPE_NODE_ENERGY_J][cap].min()
                    st[K.RS_CARBON_COEF] = energy / 3.6e6 / tf[k, TYPE_CARBON_REF]
                else:
                    st[K.RS_COST] = clip
                    st[K.RS_CARBON_COEF] = 1e9  # clipped to obs_clip when scaled
    return table, reg_static


def obs_templates(
    world: World, layout: ObsLayout, tn: np.ndarray, reg_static: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The state-free part of every observation, written once per scenario.

    Returns ``head[K, R, node_offset]`` (header and region block of a type-``k``
    request from origin ``o`` in the LB phase; the clock and the dynamic region
    features are left 0) and ``nodes[K, R, N_max * NODE_FEATURES]`` (region ``q``'s
    node block for type ``k``, padding included; wait, utilisation and carbon 0).
    The kernels copy these and fill in the rest.
    """
    n_types, n_regions = world.n_types, world.n_regions
    head = np.zeros((n_types, n_regions, layout.node_offset), dtype=np.float32)
    tf = world.type_f
    s = layout.scalar_offset
    log_max_bytes = max(math.log1p(tf[:, TYPE_BYTES].max()), 1e-9)
    for k in range(n_types):
        for o in range(n_regions):
            h = head[k, o]
            h[PHASE_LB] = 1.0
            h[layout.type_offset + k] = 1.0
            h[s] = tf[k, TYPE_SLO_S] / tf[:, TYPE_SLO_S].max()
            h[s + 1] = math.log1p(tf[k, TYPE_BYTES]) / log_max_bytes
            if layout.origin_offset >= 0:
                h[layout.origin_offset + o] = 1.0
            block = h[layout.region_offset :].reshape(n_regions, REGION_FEATURES)
            block[:, RF_VALID] = reg_static[k, o, :, K.RS_VALID]
            block[o, RF_IS_ORIGIN] = 1.0
            block[:, RF_RTT] = reg_static[k, o, :, K.RS_RTT]
            block[:, RF_TRANSFER] = reg_static[k, o, :, K.RS_TRANSFER]
            block[:, RF_COST] = reg_static[k, o, :, K.RS_COST]
    width = layout.max_nodes * NODE_FEATURES
    nodes = np.zeros((n_types, n_regions, width), dtype=np.float32)
    for q in range(n_regions):
        lo, hi = world.region_i[q, REG_START], world.region_i[q, REG_END]
        block = nodes[:, q].reshape(n_types, layout.max_nodes, NODE_FEATURES)
        block[:, : hi - lo, NF_VALID] = tn[:, lo:hi, K.TN_CAPABLE]
        block[:, : hi - lo, NF_EXEC] = tn[:, lo:hi, K.TN_EXEC_N]
        block[:, : hi - lo, NF_COST] = tn[:, lo:hi, K.TN_COST_N]
        block[:, : hi - lo, NF_IS_EDGE] = tn[:, lo:hi, K.TN_IS_EDGE]
    return head, nodes


def _heuristic(name: str, table: dict[str, int], field: str) -> int:
    if name not in table:
        raise ConfigError(field, f"one of {', '.join(table)}, got {name!r}")
    return table[name]


def limit_terms(
    reward: RewardConfig, type_names: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-type latency limits (s; ``inf``: none) and the prices of exceeding them.

    ``[K]`` arrays in the scenario's type order, from the reward's mappings keyed by
    type name; each entry checked, so a typo names its field.
    """
    limits = np.full(len(type_names), np.inf)
    weights = np.zeros(len(type_names))
    for field, mapping, target in (
        ("limit_s", reward.limit_s, limits),
        ("limit_exceeded", reward.limit_exceeded, weights),
    ):
        for name, value in dict(mapping).items():
            if name not in type_names:
                raise ConfigError(
                    f"reward.{field}",
                    f"request types of the scenario ({', '.join(type_names)})",
                    name,
                )
            value = float(value)
            positive = value > 0 if field == "limit_s" else value >= 0
            if not (positive and math.isfinite(value)):
                raise ConfigError(
                    f"reward.{field}.{name}",
                    f"a finite number {'> 0' if field == 'limit_s' else '>= 0'}",
                    value,
                )
            target[type_names.index(name)] = value
    unpriced = [n for n in reward.limit_exceeded if n not in reward.limit_s]
    if unpriced:
        raise ConfigError(
            f"reward.limit_s.{unpriced[0]}",
            "a latency limit (s) for every type reward.limit_exceeded prices",
        )
    return limits, weights


def check_limit_dual(
    reward: RewardConfig,
    limits: np.ndarray,
    prices: np.ndarray,
    type_names: tuple[str, ...],
) -> None:
    """Check ``reward.limit_share`` and ``limit_price_lr``, naming the bad key.

    Prices that move need a limit to move against and a price > 0 to start from
    (the learner's prior holds a price per limited type only when one is set).
    """
    share, lr = reward.limit_share, reward.limit_price_lr
    if not (0.0 < share < 1.0):
        raise ConfigError("reward.limit_share", "a share in (0, 1)", share)
    if not (lr >= 0.0 and math.isfinite(lr)):
        raise ConfigError("reward.limit_price_lr", "a finite step >= 0", lr)
    if lr == 0.0:
        return
    if not np.isfinite(limits).any():
        raise ConfigError(
            "reward.limit_s",
            "a latency limit for some type when reward.limit_price_lr > 0",
            "none",
        )
    for name, limit, price in zip(type_names, limits, prices, strict=True):
        if math.isfinite(limit) and not price > 0:
            raise ConfigError(
                f"reward.limit_exceeded.{name}",
                "a starting price > 0 for every limited type when "
                "reward.limit_price_lr > 0",
                price,
            )


class TwoTierCore:
    """B independent two-tier scheduling environments of one scenario.

    Args:
        scenario: name, path or config (see :func:`envs.scenario.load_scenario`).
        num_envs: B.
        controlled: region ids whose requests the agent decides; ``None`` = all regions.
        config: which tier learns, heuristics, episode length, warm-up.
        reward: reward weights.
        auto_truncate: end episodes after ``config.episode_length`` decisions inside the
            core (VecEnv use); off for the Gymnasium env, where ``TimeLimit`` does it.
    """

    render_mode: str | None = None

    def __init__(
        self,
        scenario: str | ScenarioConfig | Any,
        num_envs: int = 1,
        controlled: list[str] | tuple[str, ...] | None = None,
        config: TwoTierEnvConfig | None = None,
        reward: RewardConfig | None = None,
        auto_truncate: bool = True,
    ) -> None:
        self.scenario = load_scenario(scenario)
        self.config = config or TwoTierEnvConfig()
        self.reward_config = reward or RewardConfig()
        self.world = world = _world(self.scenario)
        self.num_envs = num_envs
        cfg = self.config
        if num_envs < 1:
            raise ConfigError("num_envs", f"at least 1, got {num_envs}")
        if cfg.episode_length < 1:
            raise ConfigError(
                "env.episode_length", f"at least 1, got {cfg.episode_length}"
            )
        ids = world.region_ids if controlled is None else tuple(controlled)
        self.controlled = tuple(world.region_index(r) for r in ids)

        # ---- modes and the observation layout
        try:
            learn = Tier(cfg.learn)
        except ValueError:
            raise ConfigError(
                "env.learn", f"one of {[t.value for t in Tier]}, got {cfg.learn!r}"
            ) from None
        lb_mode = heuristics.AGENT
        sched_mode = heuristics.AGENT
        if learn is Tier.scheduler:
            lb_mode = _heuristic(
                cfg.lb_heuristic, heuristics.LB_HEURISTICS, "env.lb_heuristic"
            )
        if learn is Tier.lb:
            sched_mode = _heuristic(
                cfg.scheduler_heuristic,
                heuristics.SCHEDULER_HEURISTICS,
                "env.scheduler_heuristic",
            )
        bg_mode = _heuristic(
            cfg.background_scheduler,
            heuristics.SCHEDULER_HEURISTICS,
            "env.background_scheduler",
        )
        self.layout = layout = ObsLayout(
            world.n_regions,
            world.n_types,
            world.max_region_nodes,
            cfg.region_id_input,
            cfg.load_input,
        )
        n_actions = {
            Tier.lb: world.n_regions,
            Tier.scheduler: layout.max_nodes,
            Tier.both: max(world.n_regions, layout.max_nodes),
        }[learn]
        self.single_action_space = spaces.Discrete(n_actions)
        self._n_actions = n_actions
        low = np.full(layout.size, -1.0, dtype=np.float32)
        high = np.full(layout.size, cfg.obs_clip, dtype=np.float32)
        self.single_observation_space = spaces.Box(low, high, dtype=np.float32)

        # ---- static arrays (see the tuple layouts in envs.two_tier.kernels)
        w = self.reward_config
        weights = (w.latency, w.queueing, w.slo_violation, w.cost, w.carbon)
        names = ("latency", "queueing", "slo_violation", "cost", "carbon")
        for name, value in zip(names, weights, strict=True):
            if value < 0 or not math.isfinite(value):
                raise ConfigError(
                    f"reward.{name}", f"a non-negative weight, got {value}"
                )
        if cfg.obs_clip <= 0:
            raise ConfigError("env.obs_clip", f"a positive number, got {cfg.obs_clip}")
        self.limit_s, self.limit_weights = limit_terms(w, world.type_names)
        """Per type: the reward's latency limit (s; ``inf``: none) and its price."""
        n_types = world.n_types
        params = np.zeros(K.N_PARAMS + 2 * n_types + 1)
        params[K.P_LIMITS : K.P_LIMITS + n_types] = self.limit_s
        params[K.P_LIMITS + n_types : K.P_LIMITS + 2 * n_types] = self.limit_weights
        signals = ("drawn", "expected")
        if w.limit_signal not in signals:
            raise ConfigError(
                "reward.limit_signal", f"one of {signals}", w.limit_signal
            )
        params[K.P_LIMITS + 2 * n_types] = float(w.limit_signal == "expected")
        check_limit_dual(w, self.limit_s, self.limit_weights, world.type_names)
        self._params = params
        self.limit_tally = np.zeros((2, n_types))
        """Requests placed by the agent ``[0]`` and those over their type's limit
        ``[1]``, per type, since :meth:`reset_limit_tally` (the dual update's
        measure; counted only while ``count_limits`` is on)."""
        self.count_limits = False
        params[K.P_SAT_WAIT] = parse_duration(
            cfg.saturation_wait, "env.saturation_wait"
        )
        params[K.P_GAMMA_SHAPE] = world.service_shape
        params[K.P_W_LAT : K.P_W_CARBON + 1] = weights
        params[K.P_WARMUP] = parse_duration(cfg.warmup, "env.warmup")
        params[K.P_CLIP] = cfg.obs_clip
        if cfg.invalid_action_penalty < 0:
            raise ConfigError(
                "env.invalid_action_penalty", f">= 0, got {cfg.invalid_action_penalty}"
            )
        params[K.P_INVALID_PENALTY] = cfg.invalid_action_penalty
        if not w.term_cap > 0:
            raise ConfigError("reward.term_cap", f"a positive cap, got {w.term_cap}")
        params[K.P_TERM_CAP] = w.term_cap
        self.scoring = heuristics.scoring_params(w, world.service_shape)
        """What the weighted heuristic scores with (its baseline policy needs it)."""
        params[K.P_SCORING : K.P_SCORING + heuristics.N_SCORING] = self.scoring
        ip = np.zeros(K.N_IPARAMS, dtype=np.int64)
        ip[K.IP_LB_MODE], ip[K.IP_SCHED_MODE], ip[K.IP_BG_MODE] = (
            lb_mode,
            sched_mode,
            bg_mode,
        )
        ip[K.IP_EP_LEN] = cfg.episode_length if auto_truncate else 0
        ip[K.IP_NMAX] = layout.max_nodes
        ip[K.IP_START_HOUR] = world.start_hour
        ip[K.IP_OFF_TYPE] = layout.type_offset
        ip[K.IP_OFF_SCALAR] = layout.scalar_offset
        ip[K.IP_OFF_ORIGIN] = layout.origin_offset
        ip[K.IP_OFF_REGION] = layout.region_offset
        ip[K.IP_OFF_NODE] = layout.node_offset
        ip[K.IP_OFF_LOAD] = layout.load_offset
        if cfg.auto_reset not in ("continue", "warm"):
            raise ConfigError(
                "env.auto_reset", f"'continue' or 'warm', got {cfg.auto_reset!r}"
            )
        ip[K.IP_CONTINUE] = int(cfg.auto_reset == "continue")
        ip[K.IP_FALLBACK_LB] = _heuristic(
            cfg.lb_heuristic, heuristics.LB_HEURISTICS, "env.lb_heuristic"
        )
        ip[K.IP_FALLBACK_SCHED] = _heuristic(
            cfg.scheduler_heuristic,
            heuristics.SCHEDULER_HEURISTICS,
            "env.scheduler_heuristic",
        )
        region_i = world.region_i.copy()
        region_i[list(self.controlled), REG_CONTROLLED] = 1
        tn, reg_static = static_tables(world, cfg.obs_clip)
        head_tpl, node_tpl = obs_templates(world, layout, tn, reg_static)
        self._world = (
            world.node_f, region_i, tn, reg_static, world.type_f, world.hourly,
            world.burst, world.pair_f, world.mix_cum, params, ip,
            np.ascontiguousarray(tn[:, :, K.TN_EXEC]),
            1.0 / world.node_f[:, NODE_CORES], head_tpl, node_tpl,
        )  # fmt: skip

        # ---- dynamic state
        b, n, r, d = num_envs, world.n_nodes, world.n_regions, layout.size
        self.ist = np.zeros((b, K.N_IS), dtype=np.int64)
        self.fs = np.zeros((b, K.N_FS))
        self.core_free = np.zeros((b, int(world.node_cores.sum())))
        self.node_dyn = np.zeros((b, K.N_ND, n))
        self.reg_dyn = np.zeros((b, K.N_RD, r))
        self.burst_off = np.zeros((b, r), dtype=np.int64)
        self.rng = np.ones((2 * b, 2), dtype=np.uint64)
        """Random streams: row ``i`` the world of env ``i``, row ``B + i`` its
        decisions' draws (:mod:`envs.two_tier.kernels`)."""
        self.rr = np.zeros((3, b), dtype=np.int64)
        self.scratch = np.zeros((b, layout.max_nodes * NODE_FEATURES), dtype=np.float32)
        self.comps = np.zeros((b, K.N_COMPS))
        self._state = (
            self.ist, self.fs, self.core_free, self.node_dyn, self.reg_dyn,
            self.burst_off, self.rng, self.rr, self.scratch, self.comps,
        )  # fmt: skip
        self.obs = np.zeros((b, d), dtype=np.float32)
        self.mask = np.zeros((b, n_actions), dtype=bool)
        self._no_rates = np.zeros((b, r))  # live rows' region rates when not given
        self.reward = np.zeros(b, dtype=np.float32)
        self.truncated = np.zeros(b, dtype=bool)
        self.terminated = np.zeros(b, dtype=bool)
        self.final_obs = np.zeros((b, d), dtype=np.float32)
        self.ep_out = np.zeros((b, K.N_EP))
        self._step_kernel: Any = None
        self._batch_step = BatchStep(
            self.obs, self.reward, self.terminated, self.truncated, self.final_obs
        )
        self._out = (
            self.obs,
            self.mask,
            self.reward,
            self.truncated,
            self.final_obs,
            self.ep_out,
        )

    # ------------------------------------------------------------------ batched API
    def seed_streams(self, seed: int | None) -> None:
        """Give every environment independent random streams derived from ``seed``."""
        source = np.random.default_rng(seed)
        self.rng[: self.num_envs] = seed_streams(source, self.num_envs)
        self.rng[self.num_envs :] = seed_streams(source, self.num_envs)

    def seed_each(self, seeds: list[int]) -> None:
        """Seed environment ``i`` from ``seeds[i]`` alone (fixed-seed evaluation)."""
        if len(seeds) != self.num_envs:
            raise ValueError(f"seeds: expected {self.num_envs} seeds, got {len(seeds)}")
        for i, seed in enumerate(seeds):
            self.set_streams(i, np.random.default_rng(seed))

    def set_streams(self, index: int, source: np.random.Generator) -> None:
        """Seed environment ``index``'s world and decision streams from ``source``."""
        row = self._row(index)
        self.rng[row] = seed_streams(source, 1)[0]
        self.rng[self.num_envs + row] = seed_streams(source, 1)[0]

    def reset_one(self, index: int) -> None:
        """Start a new episode in environment ``index`` (stream left as seeded)."""
        K.reset_env(self._row(index), self._world, self._state, self.obs, self.mask)

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Seed and reset every environment; return their observations."""
        self.seed_streams(seed)
        for i in range(self.num_envs):
            self.reset_one(i)
        return self.obs

    def step(self, actions: np.ndarray) -> BatchStep:
        """One decision in every environment (auto-reset at the episode length).

        ``actions`` holds one integer in ``[0, A)`` per environment (masked-out ones
        are allowed: the tier's heuristic decides, at a penalty).

        Raises:
            ValueError: not ``num_envs`` integers in ``[0, A)``
                (:func:`envs.batched.check_actions`).
        """
        acts = check_actions(actions, self.num_envs, self._n_actions)
        if self._step_kernel is None:  # resolve the compiled kernel once, then call it
            args = (acts, self._world, self._state, self._out)
            K.step_batch(*args)
            signature = tuple(K.step_batch.typeof_pyval(a) for a in args)
            compiled: Any = K.step_batch.overloads[signature]
            self._step_kernel = compiled.entry_point
        else:
            self._step_kernel(acts, self._world, self._state, self._out)
        if self.count_limits:
            self._count_limits()
        return self._batch_step

    # ------------------------------------------------------------ tail-limit prices
    def set_limit_prices(self, prices: np.ndarray) -> None:
        """Charge ``prices`` ``[K]`` per exceedance from the next step on.

        The federation's dual update moves the reward's ``limit_exceeded`` between
        rounds; a type without a limit cannot be priced.
        """
        prices = np.asarray(prices, dtype=float)
        k = len(self.limit_s)
        if prices.shape != (k,) or not np.all(np.isfinite(prices) & (prices >= 0)):
            raise ValueError(
                f"limit prices: expected {k} finite prices >= 0 (one per request "
                f"type), got {prices.tolist()}"
            )
        if np.any((prices > 0) & ~np.isfinite(self.limit_s)):
            raise ValueError(
                f"limit prices: a type without a limit cannot be priced, got "
                f"{prices.tolist()} for limits {self.limit_s.tolist()}"
            )
        self.limit_weights = prices.copy()
        self._params[K.P_LIMITS + k : K.P_LIMITS + 2 * k] = prices

    def reset_limit_tally(self) -> None:
        """Start counting requests and exceedances afresh (and keep counting)."""
        self.limit_tally[:] = 0.0
        self.count_limits = True

    def _count_limits(self) -> None:
        placed = self.comps[:, K.C_PLACED] > 0
        if not placed.any():
            return
        kinds = self.comps[placed, K.C_TYPE].astype(np.int64)
        over = self.comps[placed, K.C_LATENCY] > self.limit_s[kinds]
        k = len(self.limit_s)
        self.limit_tally[0] += np.bincount(kinds, minlength=k)
        self.limit_tally[1] += np.bincount(kinds[over], minlength=k)

    def _row(self, index: int) -> int:
        """``index`` as a row of the batch, checked (the kernels do not check)."""
        row = operator.index(index)
        if not 0 <= row < self.num_envs:
            raise ValueError(
                f"index: expected an environment in [0, {self.num_envs}), got {row}"
            )
        return row

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_step_kernel"] = None  # compiled code is not picklable: look it up again
        return state

    def action_masks(self) -> np.ndarray:
        """``bool[B, A]`` masks of the pending decisions."""
        return self.mask

    def step_info(self, index: int) -> dict[str, Any]:
        """Raw components of environment ``index``'s last step (``COMPONENT_NAMES``)."""
        row = self.comps[index].tolist()
        info: dict[str, Any] = dict(zip(K.COMPONENT_NAMES, row, strict=True))
        placed = row[K.C_PLACED] > 0.0
        info["placed"] = placed
        info["slo_violated"] = row[K.C_VIOL] > 0.0
        info["invalid_action"] = row[K.C_INVALID] > 0.0
        if placed:
            world = self.world
            info["region"] = world.region_ids[int(row[K.C_REGION])]
            info["node"] = world.node_names[int(row[K.C_NODE])]
            info["origin"] = world.region_ids[int(row[K.C_ORIGIN])]
            info["request_type"] = world.type_names[int(row[K.C_TYPE])]
        else:
            info["region"] = info["node"] = info["origin"] = info["request_type"] = None
        info["phase"] = "lb" if self.ist[index, K.IS_PHASE] == 0 else "scheduler"
        return info

    def observe(
        self, index: int, state: ObservableState
    ) -> tuple[np.ndarray, np.ndarray]:
        """Observation and mask of a live decision, built by the simulator's own code.

        Environment ``index`` is set to ``state`` (its queues become the reported waits
        and busy cores) and the usual observation writer runs on it.

        Raises:
            ConfigError: an unknown request type, region, node or phase, a negative
                wait or busy count, or region rates missing (for a layout with
                region loads), of an unknown region or negative, naming the field.
        """
        world = self.world
        if state.request_type not in world.type_names:
            raise ConfigError(
                "request_type",
                f"one of {list(world.type_names)}, got {state.request_type!r}",
            )
        origin = world.region_index(state.origin)
        if state.phase not in ("lb", "scheduler"):
            raise ConfigError("phase", f"'lb' or 'scheduler', got {state.phase!r}")
        selected = -1
        if state.phase == "scheduler":
            if state.selected_region is None:
                raise ConfigError(
                    "selected_region", "a region id in the scheduler phase"
                )
            selected = world.region_index(state.selected_region)
        index_of = {name: i for i, name in enumerate(world.node_names)}
        cols, waits, busy = [], [], []
        for name, load in state.nodes.items():
            if name not in index_of:
                raise ConfigError(
                    f"nodes.{name}", "a node of the scenario (region/pool-i)"
                )
            if not load.queue_wait_s >= 0 or load.busy_cores < 0:
                raise ConfigError(f"nodes.{name}", "a queue wait and busy cores >= 0")
            n = index_of[name]
            if load.busy_cores > world.node_cores[n]:
                raise ConfigError(
                    f"nodes.{name}.busy_cores", f"at most {world.node_cores[n]} cores"
                )
            cols.append(n)
            waits.append(load.queue_wait_s)
            busy.append(load.busy_cores)
        when = state.time if state.time.tzinfo else state.time.replace(tzinfo=UTC)
        hour = int((when - YEAR_START).total_seconds() // 3600) % HOURS_PER_YEAR
        rates = self._live_rates(state.region_rates)
        one = np.ones(1, dtype=np.int64)
        obs, mask = self.observe_arrays(
            first=index,
            types=one * world.type_names.index(state.request_type),
            origins=one * origin,
            selected=one * selected,
            hours=one * hour,
            rows=np.zeros(len(cols), dtype=np.int64),
            cols=np.asarray(cols, dtype=np.int64),
            waits=np.asarray(waits, dtype=np.float64),
            busy=np.asarray(busy, dtype=np.float64),
            rates=rates,
        )
        return obs[0].copy(), mask[0].copy()

    def _live_rates(
        self, region_rates: Mapping[str, float] | None
    ) -> np.ndarray | None:
        """``region_rates`` as a ``1 x R`` array, checked (None when not given).

        Regions left out have no arrivals, as nodes left out are idle: a
        Prometheus ``sum by (origin)`` has no series for a region never used.
        """
        if region_rates is None:
            return None
        world = self.world
        rates = np.zeros((1, world.n_regions))
        for name, rate in region_rates.items():
            if name not in world.region_ids:
                raise ConfigError(
                    f"region_rates.{name}", f"a region of {list(world.region_ids)}"
                )
            if (
                isinstance(rate, bool)
                or not isinstance(rate, int | float)
                or not (math.isfinite(rate) and rate >= 0.0)
            ):
                raise ConfigError(
                    f"region_rates.{name}", f"requests/s >= 0 (finite), got {rate!r}"
                )
            rates[0, world.region_index(name)] = rate
        return rates

    def observe_arrays(
        self,
        first: int,
        types: np.ndarray,
        origins: np.ndarray,
        selected: np.ndarray,
        hours: np.ndarray,
        rows: np.ndarray,
        cols: np.ndarray,
        waits: np.ndarray,
        busy: np.ndarray,
        rates: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Batched :meth:`observe` on index arrays (a server's fast path).

        Rows ``first .. first + n - 1`` of the core become the live states (see
        :func:`envs.two_tier.kernels.write_live` for the arguments); returns views of
        their observations and masks, valid until the core is used again. Names are
        resolved by the caller; the arrays are checked here, since the kernel does
        not check them (:mod:`envs.checks`). ``rates`` (``n x R`` requests/s per
        region) is required when the layout observes region loads
        (``load_input``), and ignored otherwise.

        Raises:
            ConfigError: ``rates`` missing while the layout observes region loads.
            ValueError: a row range outside the core, or an array of the wrong dtype
                or length, or with an entry out of range (naming the argument).
        """
        world = self.world
        if rates is None and self.layout.load_input:
            raise ConfigError(
                "region_rates",
                "the regions' arrival rates (requests/s): this policy observes "
                "region loads (two_tier.load_input=true)",
            )
        types = check_indices("types", types, None, 0, world.n_types)
        n = types.shape[0]
        first = operator.index(first)
        if not (0 <= first and first + n <= self.num_envs):
            raise ValueError(
                f"first: expected rows {first}..{first + n - 1} inside "
                f"[0, {self.num_envs})"
            )
        origins = check_indices("origins", origins, n, 0, world.n_regions)
        selected = check_indices("selected", selected, n, -1, world.n_regions)
        hours = check_indices("hours", hours, n, 0, HOURS_PER_YEAR)
        rows = check_indices("rows", rows, None, 0, n)
        m = rows.shape[0]
        cols = check_indices("cols", cols, m, 0, world.n_nodes)
        waits = check_amounts("waits", waits, m)
        busy = check_amounts("busy", busy, m)
        if rates is None:  # not observed: no allocation or check on the hot path
            rates = self._no_rates[first : first + n]
        else:
            rates = check_amount_rows("rates", rates, n, world.n_regions)
        over = busy > world.node_cores[cols]
        if over.any():
            j = int(np.flatnonzero(over)[0])
            raise ValueError(
                f"busy[{j}]: expected at most {world.node_cores[cols[j]]} cores "
                f"(node {cols[j]}), got {busy[j]}"
            )
        K.write_live(
            first, types, origins, selected, hours, rows, cols, waits, busy, rates,
            self._world, self._state, self.obs, self.mask,
        )  # fmt: skip
        return self.obs[first : first + n], self.mask[first : first + n]

    def placed_components(self) -> dict[str, np.ndarray]:
        """Raw components of the requests placed by the last step, across the batch."""
        placed = self.comps[:, K.C_PLACED] > 0
        return {
            name: self.comps[placed, column].copy()
            for column, name in enumerate(K.COMPONENT_NAMES)
            if column != K.C_PLACED
        }

    def episode_info(self, index: int) -> dict[str, Any]:
        """Totals of the last finished episode of environment ``index``."""
        e = self.ep_out[index]
        placed = max(e[K.FS_PLACED], 1.0)
        return {
            "r": float(e[K.FS_RETURN]),
            "l": int(e[K.E_LENGTH]),
            "requests": int(e[K.FS_PLACED]),
            "mean_latency_s": float(e[K.FS_LATENCY] / placed),
            "mean_queue_wait_s": float(e[K.FS_WAIT] / placed),
            "slo_violation_rate": float(e[K.FS_VIOL] / placed),
            "cost_usd": float(e[K.FS_COST]),
            "carbon_g": float(e[K.FS_CARBON]),
            "energy_j": float(e[K.FS_ENERGY]),
            "sim_seconds": float(e[K.E_SIM_SECONDS]),
        }
