"""Claims: checked against certified roots, cheapest checks first, every rejection named;
credited exactly once by the processor."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from crossclear.chains.interface import RootUpdated
from crossclear.node.claims import ClaimChecker, ClaimOutcome, CollateralToken, RejectReason, VerifiedClaim
from crossclear.zk import SCALAR_FIELD, ClaimPublicSignals, Proof, VerificationKey, get_backend, load_verification_key, parse_proof
from crossclear.zk.artifacts import default_artifacts
from crossclear.zk.backends import Groth16Backend
from crossclear.zk.groth16 import proof_to_json

from ..zk.test_groth16 import _twist_point_outside_subgroup
from .harness import NODE_KEYS, START, Harness, base, chain_names, every_feed_on, opening_block

FIXTURES = Path(__file__).resolve().parents[1] / "zk" / "fixtures"
DEPOSITS = json.loads((FIXTURES / "deposits.json").read_text())
CHAIN, VAULT, ASSET, DOMAIN = 31337, 0x5FBDB2315678AFECB367F032D93F642F64180AA3, 0xE7F1725E7734CE288F8367E1BB143E90BB3F0512, 0xC105C1EA
ROOT = int(DEPOSITS["root"])
TOKEN = CollateralToken(CHAIN, VAULT, ASSET, "WETH", 18)
VERIFICATION_KEY = load_verification_key(default_artifacts().verification_key)
#: Fixture claim 1 belongs to this account (fixture 0 to anvil's test account #1).
ACCOUNT_1 = f"{0x70997970C51812DC3A010C7D01B50E0D17DC79C8 + 1:#042x}"


class Roots:
    """The certified-roots view the processor provides, as a plain set for these tests."""

    def __init__(self, *roots: tuple[int, int, int]) -> None:
        self.roots = set(roots)

    def is_root_certified(self, chain_id: int, vault: int, root: int) -> bool:
        return (chain_id, vault, root) in self.roots


class CountingBackend:
    """The default backend, counting how often the claim checker reached it."""

    def __init__(self, name: str | None = None) -> None:
        self.inner: Groth16Backend = get_backend(name)
        self.calls = 0

    def verify(self, key: VerificationKey, proof: Proof, public_signals: Sequence[int]) -> bool:
        self.calls += 1
        return self.inner.verify(key, proof, public_signals)

    def verify_batch(self, key: VerificationKey, items: Sequence[tuple[Proof, Sequence[int]]]) -> list[bool]:
        self.calls += len(items)
        return list(self.inner.verify_batch(key, items))  # type: ignore[arg-type]


def fixture(index: int) -> tuple[Any, Any]:
    folder = FIXTURES / "proofs" / f"{index:02d}"
    return json.loads((folder / "proof.json").read_text()), json.loads((folder / "public.json").read_text())


def checker(
    domain: int = DOMAIN,
    certified: bool = True,
    credited: Callable[[int], bool] = lambda nullifier: False,
    backend: Groth16Backend | None = None,
    tokens: dict[tuple[int, int, int], CollateralToken] | None = None,
    roots: Any = None,
) -> ClaimChecker:
    if roots is None:
        roots = Roots((CHAIN, VAULT, ROOT)) if certified else Roots()
    return ClaimChecker(VERIFICATION_KEY, domain, {(CHAIN, VAULT, ASSET): TOKEN} if tokens is None else tokens, roots, credited, backend)


def fixture_harness(path: Path, key: bytes = NODE_KEYS[0]) -> Harness:
    """A node's processor clearing the zk fixtures' vault (chain 31337, WETH collateral)."""
    return Harness(
        path, key, chain=CHAIN, vault=f"{VAULT:#042x}", names={CHAIN: chain_names(CHAIN, f"{VAULT:#042x}", {f"{ASSET:#042x}": ("WETH", 18)})},
        tokens={(CHAIN, "WETH"): TOKEN}, feed_chains=every_feed_on(CHAIN), domain=DOMAIN,
    )


def root_block(block: int, timestamp: int) -> list[Any]:
    """The fixtures' deposits as the vault's certified root, with every feed answering."""
    root = RootUpdated(**base(f"{VAULT:#042x}", block, 9, timestamp, CHAIN), root=ROOT, leaf_count=len(DEPOSITS["leaves"]))
    return [*opening_block(timestamp, chain_id=CHAIN, block=block), root]


async def started_fixture_node(path: Path, key: bytes = NODE_KEYS[0], timestamp: int = START) -> Harness:
    """A started fixture node whose first block (prices and the deposits' root) is certified."""
    node = fixture_harness(path, key)
    await node.start()
    await node.certify(node.observe(1, timestamp, root_block(1, timestamp)))
    await node.settled()
    return node


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), 120))


# --- the checker ---------------------------------------------------------------------------------


def test_a_valid_claim_passes_every_check_and_the_checker_changes_nothing() -> None:
    asked: list[int] = []

    def credited(nullifier: int) -> bool:
        asked.append(nullifier)
        return False

    check = checker(credited=credited)
    verified = check.check(*fixture(0))
    assert isinstance(verified, VerifiedClaim)
    claim = verified.claim
    assert (claim.source_chain_id, claim.vault, claim.asset, claim.claimed_amount) == (CHAIN, VAULT, ASSET, 5 * 10**17)
    assert verified.token == TOKEN and verified.account == "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
    assert asked == [claim.nullifier]
    # What is stored with the credit reads back as the same proof and signals.
    assert parse_proof(json.loads(verified.proof_json)) == parse_proof(fixture(0)[0])
    assert ClaimPublicSignals.from_signals([int(v) for v in json.loads(verified.signals_json)]) == claim
    again = check.check(*fixture(0))  # nothing was recorded: the same answer again
    assert isinstance(again, VerifiedClaim) and again == verified


def rejected(check: ClaimChecker, proof: Any, public: Any, reason: RejectReason, fragment: str) -> ClaimOutcome:
    outcome = check.check(proof, public)
    assert isinstance(outcome, ClaimOutcome), outcome
    assert (outcome.accepted, outcome.reason) == (False, reason), outcome.detail
    assert fragment in outcome.detail
    return outcome


def test_uncertified_root_is_refused() -> None:
    outcome = rejected(checker(certified=False), *fixture(2), RejectReason.UNCERTIFIED_ROOT, "has no quorum certificate")
    assert outcome.claim is not None and outcome.claim.root == ROOT  # kept for a retry when the certificate forms


def test_other_domain_is_refused() -> None:
    rejected(checker(domain=DOMAIN + 1), *fixture(2), RejectReason.WRONG_DOMAIN, "bound to domain")


def test_unknown_collateral_is_refused() -> None:
    other = CollateralToken(CHAIN, VAULT, ASSET + 1, "WETH", 18)
    rejected(checker(tokens={(CHAIN, VAULT, ASSET + 1): other}), *fixture(2), RejectReason.UNKNOWN_COLLATERAL, "is cleared here")


def test_a_credited_nullifier_is_refused() -> None:
    _, public = fixture(2)
    nullifier = int(public[6])
    check = checker(credited=lambda n: n == nullifier)
    rejected(check, *fixture(2), RejectReason.NULLIFIER_USED, f"nullifier {nullifier} was already claimed")
    assert isinstance(check.check(*fixture(3)), VerifiedClaim)  # another nullifier is unaffected


def test_aliased_signal_is_refused_before_any_pairing() -> None:
    proof, public = fixture(2)
    aliased = list(public)
    aliased[5] = str(int(aliased[5]) + SCALAR_FIELD)
    backend = CountingBackend()
    rejected(checker(backend=backend), proof, aliased, RejectReason.MALFORMED, "not below the scalar field order")
    assert backend.calls == 0


def test_tampered_amount_fails_verification() -> None:
    proof, public = fixture(3)
    inflated = list(public)
    inflated[5] = str(int(inflated[5]) * 2)
    rejected(checker(), proof, inflated, RejectReason.INVALID_PROOF, "does not verify")


def test_garbage_is_malformed() -> None:
    rejected(checker(), {"pi_a": "nope"}, ["1"], RejectReason.MALFORMED, "")
    proof, public = fixture(4)
    rejected(checker(), proof, public[:-1], RejectReason.MALFORMED, "expected 8 public signals, got 7")
    rejected(checker(), proof, "not a list", RejectReason.MALFORMED, "")


def test_zero_amount_claim_is_refused() -> None:
    proof, public = fixture(5)
    zero = list(public)
    zero[5] = "0"
    backend = CountingBackend()
    rejected(checker(backend=backend), proof, zero, RejectReason.MALFORMED, "claimed amount is 0")
    assert backend.calls == 0


def _with_point(proof: Any, name: str) -> Any:
    parsed = parse_proof(proof)
    if name == "a_off_curve":
        bad = replace(parsed, a=(parsed.a[0], parsed.a[1] + 1))
    elif name == "c_off_curve":
        bad = replace(parsed, c=(parsed.c[0], parsed.c[1] + 1))
    else:
        bad = replace(parsed, b=_twist_point_outside_subgroup())
    return proof_to_json(bad)


@pytest.mark.parametrize("backend_name", ["native", "py_ecc"])
@pytest.mark.parametrize(
    ("point", "fragment"),
    [("a_off_curve", "proof A: point is not on"), ("c_off_curve", "proof C: point is not on"), ("b_outside_subgroup", "order-r subgroup")],
)
def test_a_point_off_the_curve_or_subgroup_is_malformed_as_the_backend_finds_it(backend_name: str, point: str, fragment: str) -> None:
    """No curve arithmetic before the backend: the structural check passes such a proof, and
    the backend's own curve and subgroup checks report it (MALFORMED, not INVALID_PROOF)."""
    from crossclear.zk import available_backends

    if backend_name not in available_backends():
        pytest.skip(f"backend {backend_name} is not built here")
    proof, public = fixture(1)
    backend = CountingBackend(backend_name)
    outcome = rejected(checker(backend=backend), _with_point(proof, point), public, RejectReason.MALFORMED, fragment)
    assert backend.calls == 1 and outcome.claim is not None  # the signals were read; the backend refused the point
    # The same bad point behind an earlier refusal never reaches the backend.
    rejected(checker(certified=False, backend=backend), _with_point(proof, point), public, RejectReason.UNCERTIFIED_ROOT, "")
    assert backend.calls == 1


def test_cheap_refusals_never_reach_the_backend() -> None:
    backend = CountingBackend()
    proof, public = fixture(2)
    rejected(checker(certified=False, backend=backend), proof, public, RejectReason.UNCERTIFIED_ROOT, "")
    rejected(checker(domain=DOMAIN + 1, backend=backend), proof, public, RejectReason.WRONG_DOMAIN, "")
    rejected(checker(tokens={}, backend=backend), proof, public, RejectReason.UNKNOWN_COLLATERAL, "")
    rejected(checker(credited=lambda n: True, backend=backend), proof, public, RejectReason.NULLIFIER_USED, "")
    assert backend.calls == 0


# --- crediting through a node's processor -----------------------------------------------------


def test_roots_come_from_the_processor_and_a_claim_is_credited_once(tmp_path: Path) -> None:
    async def body() -> None:
        node = fixture_harness(tmp_path / "node.sqlite")
        await node.start()
        check = checker(roots=node.processor, credited=node.processor.is_credited)
        rejected(check, *fixture(0), RejectReason.UNCERTIFIED_ROOT, "has no quorum certificate")
        await node.certify(node.observe(1, START, root_block(1, START)))
        await node.settled()
        assert node.processor.is_root_certified(CHAIN, VAULT, ROOT)
        verified = check.check(*fixture(0))
        assert isinstance(verified, VerifiedClaim)
        outcome = await node.credit(verified)
        assert outcome.accepted and "credited 0.5 WETH (500000000000000000 base units) on chain 31337" in outcome.detail
        line = (verified.account, CHAIN, "WETH")
        assert node.processor.ledger.balances == {line: 5 * 10**17}
        # A replay is refused by the checker (the nullifier is credited) ...
        rejected(check, *fixture(0), RejectReason.NULLIFIER_USED, "already claimed")
        # ... and by the processor when a second check raced the first credit.
        raced = await node.credit(verified)
        assert (raced.accepted, raced.reason) == (False, RejectReason.NULLIFIER_USED)
        await node.settled()
        assert node.processor.ledger.balances == {line: 5 * 10**17}
        assert node.processor.ledger.credited == {(CHAIN, "WETH"): 5 * 10**17}
        assert node.processor.snapshot is not None
        assert node.processor.snapshot.margin(verified.account).collateral[0].units == 5 * 10**17
        stored = node.store.claim(verified.claim.nullifier)
        assert stored is not None and (stored.account, stored.amount) == (verified.account, 5 * 10**17)
        await node.stop()

    run(body)


def test_restart_restores_credits_and_roots_without_doubling(tmp_path: Path) -> None:
    async def body() -> None:
        node = await started_fixture_node(tmp_path / "node.sqlite")
        verified = checker(roots=node.processor, credited=node.processor.is_credited).check(*fixture(1))
        assert isinstance(verified, VerifiedClaim)
        assert (await node.credit(verified)).accepted
        await node.restart()
        check = checker(roots=node.processor, credited=node.processor.is_credited)
        assert node.processor.is_root_certified(CHAIN, VAULT, ROOT)
        rejected(check, *fixture(1), RejectReason.NULLIFIER_USED, "already claimed")
        assert not (await node.credit(verified)).accepted
        assert node.processor.ledger.balances == {(ACCOUNT_1, CHAIN, "WETH"): 10**18}
        assert node.processor.ledger.conservation_failures() == []
        await node.stop()

    run(body)


def test_every_node_checks_and_credits_a_claim_itself(tmp_path: Path) -> None:
    async def body() -> None:
        nodes = [await started_fixture_node(tmp_path / f"node{i}.sqlite", NODE_KEYS[i]) for i in range(2)]
        for node in nodes:
            verified = checker(roots=node.processor, credited=node.processor.is_credited).check(*fixture(0))
            assert isinstance(verified, VerifiedClaim)
            assert (await node.credit(verified)).accepted
            again = checker(roots=node.processor, credited=node.processor.is_credited).check(*fixture(0))
            assert isinstance(again, ClaimOutcome) and again.reason is RejectReason.NULLIFIER_USED
        assert nodes[0].money() == nodes[1].money()
        for node in nodes:
            await node.stop()

    run(body)


def test_a_credit_the_clearing_state_cannot_hold_is_answered_and_changes_nothing(tmp_path: Path) -> None:
    """A [collateral] asset missing from the risk file passes config checks; crediting it fails
    inside the processor (unknown asset). The claimant must get an answer, and the ledger must
    stay what the database says."""

    async def body() -> None:
        node = await started_fixture_node(tmp_path / "node.sqlite")
        verified = checker(roots=node.processor, credited=node.processor.is_credited).check(*fixture(0))
        assert isinstance(verified, VerifiedClaim)
        unpriced = replace(verified, token=replace(TOKEN, asset="DOGE"))
        try:
            outcome = await asyncio.wait_for(node.credit(unpriced), 3)
        except TimeoutError:
            pytest.fail("the claim's reply never came")
        except Exception:  # refused loudly: fine
            pass
        else:
            assert not outcome.accepted
        await node.settled()
        ledger = node.processor.ledger
        assert (ledger.balances, ledger.credited, node.store.balances()) == ({}, {}, [])
        await node.stop()

    run(body)
