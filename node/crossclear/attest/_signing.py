"""A node signing its own observations."""

from __future__ import annotations

from crossclear.attest._eip712 import SigningDomain, observation_digest
from crossclear.attest._keys import NodeKey
from crossclear.attest._observation import Observation
from crossclear.attest._verify import VerifiedSignature


def sign_observation(key: NodeKey, domain: SigningDomain, observation: Observation) -> VerifiedSignature:
    digest = observation_digest(domain, observation)
    return VerifiedSignature(observation, digest, key.address, key.sign_digest(digest))
