"""Which policy version is in force for a region on a date, with the deployment's parameters applied."""

from __future__ import annotations

from datetime import date

from . import inner_mongolia, nanjing, ningxia, weihai
from .parameters import ParameterError, ParameterSet
from .rejection import Rejected
from .rules import Policy, RegionRules

_RULES: tuple[RegionRules, ...] = (ningxia, weihai, nanjing, inner_mongolia)  # each checked against RegionRules
REGIONS: dict[str, RegionRules] = {rules.REGION: rules for rules in _RULES}
REGION_NAMES = {"640000": "Ningxia", "371000": "Weihai", "320100": "Nanjing", "150000": "Inner Mongolia"}


class PolicyRegistry:
    def __init__(self, parameters: ParameterSet | None = None):
        parameters = parameters or ParameterSet()
        self._by_region: dict[str, tuple[Policy, ...]] = {}
        self._by_id: dict[str, Policy] = {}
        self._on: dict[tuple[str, date], Policy] = {}
        for region, rules in REGIONS.items():
            versions = []
            for policy_id, valid_from, valid_to, defaults in rules.VERSIONS:
                policy = Policy(policy_id, region, valid_from, valid_to, rules, parameters.apply(policy_id, defaults))
                versions.append(policy)
                self._by_id[policy_id] = policy
            self._by_region[region] = tuple(versions)
        unknown = parameters.policy_ids() - set(self._by_id)
        if unknown:
            raise ParameterError(f"unknown policy ids in parameters: {sorted(unknown)}; known: {sorted(self._by_id)}")

    def on(self, region: str, day: date) -> Policy:
        key = (region, day)
        policy = self._on.get(key)
        if policy is None:
            policy = self._on[key] = self._in_force(region, day)  # one entry per region and day seen
        return policy

    def _in_force(self, region: str, day: date) -> Policy:
        for policy in self._by_region.get(region, ()):
            if policy.covers(day):
                return policy
        name = REGION_NAMES.get(region, region)
        raise Rejected("policy_not_configured", f"no {name} ({region}) policy is in force on {day.isoformat()}")

    def for_year(self, region: str, year: int) -> Policy | None:
        """The version in force at the end of `year` (or the last one that began in it)."""
        chosen = None
        for policy in self._by_region.get(region, ()):
            if policy.valid_from <= date(year, 12, 31) and (
                policy.valid_to is None or policy.valid_to >= date(year, 1, 1)
            ):
                chosen = policy
        return chosen

    def nearest(self, region: str, day: date) -> Policy:
        """The version in force on `day`; before the first one, that first one; after the last, the last. An event
        dated outside every version (an enrolment before the document took effect) is bounded by its neighbour's
        limits."""
        versions = self._by_region.get(region, ())
        if not versions:
            raise Rejected("policy_not_configured", f"no policy is configured for region {region}")
        for policy in versions:
            if policy.valid_to is None or day <= policy.valid_to:
                return policy
        return versions[-1]

    def by_id(self, policy_id: str) -> Policy:
        return self._by_id[policy_id]

    def all(self) -> tuple[Policy, ...]:
        return tuple(self._by_id.values())
