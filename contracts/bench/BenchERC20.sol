// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

// Test-only: the ERC-20 of `colearn bench gas`'s staked experiments (a join that deposits a
// token stake). OpenZeppelin's ERC20 as is, an amount minted to each holder. Never deployed
// outside the benchmark.

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice A plain ERC-20 that mints `amount` to each of `holders`.
contract BenchERC20 is ERC20 {
    constructor(address[] memory holders, uint256 amount) ERC20("Bench stake", "STAKE") {
        for (uint256 i = 0; i < holders.length; ++i) {
            _mint(holders[i], amount);
        }
    }
}
