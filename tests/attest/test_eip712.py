from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_hash.auto import keccak

from crossclear.attest import SigningDomain, observation_digest, recover_signer, sign_observation

from .helpers import KEYS, observation


def _typed_data(domain: SigningDomain) -> dict[str, object]:
    subject = observation()
    return {
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"}],
            "Observation": [
                {"name": "kind", "type": "uint8"},
                {"name": "chainId", "type": "uint256"},
                {"name": "emitter", "type": "address"},
                {"name": "blockNumber", "type": "uint64"},
                {"name": "blockHash", "type": "bytes32"},
                {"name": "root", "type": "bytes32"},
                {"name": "leafCount", "type": "uint64"},
            ],
        },
        "primaryType": "Observation",
        "domain": {"name": domain.name, "version": domain.version},
        "message": {
            "kind": int(subject.kind),
            "chainId": subject.chain_id,
            "emitter": "0x" + subject.emitter.hex(),
            "blockNumber": subject.block_number,
            "blockHash": subject.block_hash,
            "root": subject.root,
            "leafCount": subject.leaf_count,
        },
    }


def test_digest_matches_eth_account_typed_data_encoding() -> None:
    domain = SigningDomain()
    signable = encode_typed_data(full_message=_typed_data(domain))
    expected = keccak(b"\x19" + signable.version + signable.header + signable.body)
    assert observation_digest(domain, observation()) == expected


def test_signature_is_what_eth_account_produces_and_recovers_to_the_signer() -> None:
    domain = SigningDomain()
    key = KEYS[0]
    signed = sign_observation(key, domain, observation())
    reference = Account.sign_typed_data(key.secret, full_message=_typed_data(domain))
    assert signed.signature == bytes(reference.signature)
    assert signed.signature[64] in (27, 28)
    assert recover_signer(signed.digest, signed.signature) == key.address


def test_domain_and_every_field_change_the_digest() -> None:
    base = observation_digest(SigningDomain(), observation())
    assert observation_digest(SigningDomain(version="2"), observation()) != base
    assert observation_digest(SigningDomain(), observation(block=8)) != base
    assert observation_digest(SigningDomain(), observation(root_byte=1)) != base
    assert observation_digest(SigningDomain(), observation(chain_id=1)) != base
