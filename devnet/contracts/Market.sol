// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title Devnet position registry for perpetuals and European options.
/// @notice Records positions per trader and emits `PositionChanged`; it matches no orders and
/// moves no funds (margin is the clearinghouse's job). Sizes, prices and strikes have 18
/// decimals; size is signed (positive long, negative short).
contract Market {
    enum Kind {
        Perpetual,
        Option
    }

    struct Position {
        address trader;
        address underlying;
        Kind kind;
        int256 size;
        uint256 strike;
        uint64 expiry;
        bool isCall;
        bool open;
    }

    uint256 public nextPositionId = 1;
    mapping(uint256 => Position) public positions;

    event PositionChanged(
        uint256 indexed positionId,
        address indexed trader,
        address indexed underlying,
        Kind kind,
        int256 size,
        uint256 price,
        uint256 strike,
        uint64 expiry,
        bool isCall,
        bool open
    );

    function openPerpetual(address underlying, int256 size, uint256 price) external returns (uint256) {
        return _open(Position(msg.sender, underlying, Kind.Perpetual, size, 0, 0, false, true), price);
    }

    function openOption(address underlying, int256 size, uint256 premium, uint256 strike, uint64 expiry, bool isCall)
        external
        returns (uint256)
    {
        require(strike > 0, "Market: strike must be positive");
        require(expiry > block.timestamp, "Market: option already expired");
        return _open(Position(msg.sender, underlying, Kind.Option, size, strike, expiry, isCall, true), premium);
    }

    function close(uint256 positionId, uint256 price) external {
        Position storage position = positions[positionId];
        require(position.open, "Market: no open position with this id");
        require(position.trader == msg.sender, "Market: not the position's trader");
        position.open = false;
        emit PositionChanged(
            positionId,
            position.trader,
            position.underlying,
            position.kind,
            position.size,
            price,
            position.strike,
            position.expiry,
            position.isCall,
            false
        );
    }

    function _open(Position memory position, uint256 price) private returns (uint256 positionId) {
        require(position.underlying != address(0), "Market: underlying is the zero address");
        require(position.size != 0, "Market: size must be non-zero");
        require(price > 0, "Market: price must be positive");
        positionId = nextPositionId++;
        positions[positionId] = position;
        emit PositionChanged(
            positionId,
            position.trader,
            position.underlying,
            position.kind,
            position.size,
            price,
            position.strike,
            position.expiry,
            position.isCall,
            true
        );
    }
}
