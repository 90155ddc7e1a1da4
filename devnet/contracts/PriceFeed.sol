// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title Devnet price feed for one asset, read like a Chainlink aggregator.
/// @notice The owner sets the answer; nodes observe `PriceUpdated` and judge staleness from
/// `updatedAt`. Readers use `latestRoundData()` and `decimals()` as with Chainlink.
contract PriceFeed {
    address public immutable owner;
    /// The token this feed prices (USD per whole token, scaled by 10**decimals).
    address public immutable asset;
    uint8 public immutable decimals;
    string public description;

    uint80 private latestRound;
    int256 private latestAnswer;
    uint256 private latestUpdatedAt;

    event PriceUpdated(address indexed asset, int256 answer, uint8 decimals, uint80 roundId, uint256 updatedAt);

    constructor(address asset_, uint8 decimals_, string memory description_, int256 initialAnswer) {
        owner = msg.sender;
        asset = asset_;
        decimals = decimals_;
        description = description_;
        _set(initialAnswer);
    }

    function setAnswer(int256 answer) external {
        require(msg.sender == owner, "PriceFeed: only owner");
        _set(answer);
    }

    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return (latestRound, latestAnswer, latestUpdatedAt, latestUpdatedAt, latestRound);
    }

    function _set(int256 answer) private {
        require(answer > 0, "PriceFeed: answer must be positive");
        latestRound += 1;
        latestAnswer = answer;
        latestUpdatedAt = block.timestamp;
        emit PriceUpdated(asset, answer, decimals, latestRound, block.timestamp);
    }
}
