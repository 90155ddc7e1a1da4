"""The whole story on a real chain with four real nodes (libp2p, gRPC, SQLite, the kernel):
a deposit's root is certified, a claim is proven with snarkjs and credited on every node,
a position is certified into margin, and a withdrawal is released by a quorum the vault accepts."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from web3 import Web3

from crossclear.chains.artifacts import load_artifact
from crossclear.devnet.accounts import funded_accounts, node_keys
from crossclear.devnet.anvil import Anvil
from crossclear.devnet.deploy import connect, deploy_devnet, transact
from crossclear.devnet.trading import trade_perpetual
from crossclear.node.config import load_config
from crossclear.node.liquidator import Liquidator
from crossclear.node.topology import DeployedChain, allocate_ports, write_node_configs
from crossclear.node.wiring import Node
from crossclear.node.withdrawals import WithdrawalRequest, sign_request
from crossclear.v1 import claim_pb2, claim_pb2_grpc, margin_pb2, margin_pb2_grpc, withdrawal_pb2, withdrawal_pb2_grpc
from crossclear.zk import IncrementalMerkleTree, secret_hash
from crossclear.zk.groth16 import proof_to_json
from crossclear.zk.prover import ClaimStatement, Deposit, prove_claim

pytestmark = pytest.mark.slow

CHAIN_ID = 31501
DOMAIN = 3238380010
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.2)


def test_deposit_claim_position_and_release(tmp_path: Path) -> None:
    with Anvil(chain_id=CHAIN_ID) as chain:
        keys = node_keys(4)
        depositor, liquidator, counterparty = funded_accounts(3)
        deployment = deploy_devnet(chain.rpc_url, [k.address for k in keys], [depositor.address, liquidator.address, counterparty.address])
        weth = next(t for t in deployment.tokens if t.symbol == "WETH")
        web3 = connect(chain.rpc_url)
        paths = write_node_configs(tmp_path, [DeployedChain("devnet-a", CHAIN_ID, chain.rpc_url, deployment)], keys, EXAMPLES / "risk.json", DOMAIN, allocate_ports(4), liquidation_recipient=liquidator.address)

        def mine_blocking(blocks: int) -> None:
            for _ in range(blocks):
                web3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

        async def mine(blocks: int) -> None:
            # Blocking chain calls stay off the event loop the in-process nodes run on.
            await asyncio.to_thread(mine_blocking, blocks)

        async def story() -> None:
            nodes = [Node(load_config(path, environ={})) for path in paths]
            ports = []
            try:
                for node in nodes:
                    ports.append((await node.start()).rpc)
                channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for port in ports]

                # 1. Deposit 2 WETH; the vault computes the leaf and the new root.
                secret = 0xC0FFEE1234
                amount = 2 * 10**18
                await asyncio.to_thread(transact, web3, "MockERC20", weth.address, "approve", deployment.vault, amount, sender=depositor.address)
                await asyncio.to_thread(transact, web3, "CollateralVault", deployment.vault, "deposit", weth.address, amount, secret_hash(secret), sender=depositor.address)
                await mine(3)
                claim_deposit = Deposit(secret, int(depositor.address, 16), int(weth.address, 16), amount, 0, CHAIN_ID, int(deployment.vault, 16))
                tree = IncrementalMerkleTree()
                tree.insert(claim_deposit.leaf)
                await eventually(lambda: all(n.processor.is_root_certified(CHAIN_ID, int(deployment.vault, 16), tree.root) for n in nodes), 60, "the root certified on every node")

                # 2. Prove a claim for 1.5 WETH and submit it to node 0 only; gossip takes it everywhere.
                proof, claim = await asyncio.to_thread(prove_claim, claim_deposit, tree.path(0), ClaimStatement(15 * 10**17, DOMAIN))
                request = claim_pb2.SubmitClaimRequest(proof_json=json.dumps(proof_to_json(proof)), public_signals=claim.to_json())
                answer = await claim_pb2_grpc.ClaimServiceStub(channels[0]).SubmitClaim(request, timeout=30)
                assert answer.status == claim_pb2.CLAIM_STATUS_ACCEPTED, answer.detail
                account = depositor.address.lower()

                async def credited_everywhere() -> bool:
                    for channel in channels:
                        try:
                            margin = await margin_pb2_grpc.MarginServiceStub(channel).GetMargin(margin_pb2.GetMarginRequest(account=account), timeout=5)
                        except grpc.aio.AioRpcError:
                            return False
                        if not margin.collateral or margin.collateral[0].amount != pytest.approx(1.5):
                            return False
                    return True

                await eventually(credited_everywhere, 30, "the claim credited on every node")
                replay = await claim_pb2_grpc.ClaimServiceStub(channels[3]).SubmitClaim(request, timeout=30)
                assert replay.status == claim_pb2.CLAIM_STATUS_NULLIFIER_USED

                # 3. The depositor buys 3 ETH perpetuals from a counterparty (a signed order, filled):
                #    certified into every node's margin, and open interest nets to zero.
                await asyncio.to_thread(trade_perpetual, web3, deployment.market, weth.address, depositor.private_key, depositor.address, counterparty.address, 3 * 10**18, 3000 * 10**18, 1)
                await mine(3)

                async def position_everywhere() -> bool:
                    for channel in channels:
                        margin = await margin_pb2_grpc.MarginServiceStub(channel).GetMargin(margin_pb2.GetMarginRequest(account=account), timeout=5)
                        if len(margin.positions) != 1:
                            return False
                    return True

                await eventually(position_everywhere, 60, "the position certified on every node")

                # 4. Withdraw 0.2 WETH: a quorum signs, the vault pays.
                ask = WithdrawalRequest(account, CHAIN_ID, weth.address, 2 * 10**17, depositor.address, b"\x05" * 32, int(time.time()) + 600)
                release = await withdrawal_pb2_grpc.WithdrawalServiceStub(channels[1]).RequestRelease(
                    withdrawal_pb2.ReleaseRequest(
                        account=account, chain_id=CHAIN_ID, token=weth.address, amount=str(ask.amount), recipient=depositor.address,
                        nonce=ask.nonce, deadline=ask.deadline, owner_signature=sign_request(ask, DOMAIN, depositor.private_key),
                    ),
                    timeout=30,
                )
                assert len(release.signatures) >= 3
                token = web3.eth.contract(address=Web3.to_checksum_address(weth.address), abi=list(load_artifact("MockERC20").abi))
                before = await asyncio.to_thread(token.functions.balanceOf(depositor.address).call)
                await asyncio.to_thread(transact, web3, "CollateralVault", deployment.vault, "release", bytes(release.release_id), release.account, release.token, int(release.amount), release.recipient, release.deadline, list(release.signatures), sender=depositor.address)
                assert await asyncio.to_thread(token.functions.balanceOf(depositor.address).call) == before + 2 * 10**17

                # 5. ETH halves: variation margin moves the loss to the counterparty; the depositor's
                #    loss is more than its collateral, so the nodes sign close-outs and the liquidator
                #    takes them by auction until the account is flat; the waterfall handles the rest.
                await asyncio.to_thread(transact, web3, "PriceFeed", weth.price_feed, "setAnswer", 1500 * 10**8)
                await mine(3)

                async def liquidatable_everywhere() -> bool:
                    for channel in channels:
                        margin = await margin_pb2_grpc.MarginServiceStub(channel).GetMargin(margin_pb2.GetMarginRequest(account=account), timeout=5)
                        if not margin.liquidatable:
                            return False
                    return True

                await eventually(liquidatable_everywhere, 60, "the account liquidatable on every node")
                backstop = Liquidator([f"127.0.0.1:{port}" for port in ports], [k.address for k in keys], {CHAIN_ID: chain.rpc_url}, liquidator.private_key)

                async def flat_everywhere() -> bool:
                    await backstop.close_out_once()
                    await mine(1)
                    return all(not any(account in sizes for sizes in n.processor.open_interest().values()) for n in nodes)

                try:
                    await eventually(flat_everywhere, 120, "the account closed out on every node")
                except AssertionError:
                    raise AssertionError(f"liquidator errors {dict(backstop.errors)}, skipped {dict(backstop.skipped)}, close-outs {[await n.sign_close_outs() for n in nodes][:1]}") from None
                await eventually(lambda: all(n.processor.defaults and n.processor.defaults[-1][0] == account for n in nodes), 60, "the default handled on every node")
                assert backstop.submitted >= 1
                for node in nodes:  # the books balance, and every long still has a short
                    assert node.processor.ledger.conservation_failures() == [] and not node.processor.halted
                    assert all(sum(sizes.values()) == 0 for sizes in node.processor.open_interest().values())
                assert len({tuple(sorted(n.processor.ledger.settlement.items())) for n in nodes}) == 1  # identical on every node
                for channel in channels:
                    await channel.close()
            finally:
                for node in nodes:
                    await node.stop()

        # A hang anywhere fails here with the stack of the await that hung, not at pytest's timeout.
        asyncio.run(asyncio.wait_for(story(), 300))
