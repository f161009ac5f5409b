// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

// Test-only: the comparison point of `colearn bench gas`. OpenZeppelin's Governor in its
// usual token-voting setup (GovernorSettings, GovernorCountingSimple, GovernorVotes over
// an ERC20Votes token), as little else as compiles. Never deployed outside the benchmark.

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Votes} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Votes.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Governor} from "@openzeppelin/contracts/governance/Governor.sol";
import {GovernorCountingSimple} from "@openzeppelin/contracts/governance/extensions/GovernorCountingSimple.sol";
import {GovernorSettings} from "@openzeppelin/contracts/governance/extensions/GovernorSettings.sol";
import {GovernorVotes} from "@openzeppelin/contracts/governance/extensions/GovernorVotes.sol";
import {IVotes} from "@openzeppelin/contracts/governance/utils/IVotes.sol";

/// @notice An ERC20Votes token that mints one token to each holder (who must still delegate).
contract BenchToken is ERC20, ERC20Votes {
    constructor(address[] memory holders) ERC20("Bench", "BENCH") EIP712("Bench", "1") {
        for (uint256 i = 0; i < holders.length; ++i) {
            _mint(holders[i], 1e18);
        }
    }

    function _update(address from, address to, uint256 value) internal override(ERC20, ERC20Votes) {
        super._update(from, to, value);
    }
}

/// @notice A Governor: voting delay 1 block, voting period 50400 blocks, no proposal
/// threshold, a fixed quorum of one token (the quorum is not read while voting).
contract BenchGovernor is Governor, GovernorSettings, GovernorCountingSimple, GovernorVotes {
    constructor(IVotes token) Governor("BenchGovernor") GovernorSettings(1, 50400, 0) GovernorVotes(token) {}

    function quorum(uint256) public pure override returns (uint256) {
        return 1e18;
    }

    function proposalThreshold() public view override(Governor, GovernorSettings) returns (uint256) {
        return super.proposalThreshold();
    }
}
