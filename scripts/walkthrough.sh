#!/usr/bin/env bash
# The README's "Your first hour: three stakeholders on a dev chain", as a newcomer runs it:
# `colearn dev`, the experiment created from the spec it wrote, one agent process per
# stakeholder, the audit, the experiment's status, the final model fetched and loaded.
# CI runs this script as it stands (tests/scripts/test_walkthrough.py), so the README's
# commands and this walkthrough cannot drift apart.
#
#   scripts/walkthrough.sh [DIR]   # from any directory; DIR: colearn dev's --out
#                                  # (default ./colearn-dev)
#
# COLEARN names the colearn executable (default the checkout's .venv/bin/colearn, which
# `make demo` installs).
# Everything it starts (colearn dev, which stops anvil and IPFS, and the agents) is stopped
# when the script ends, however it ends: success, a failed step, Ctrl-C or SIGTERM.
set -euo pipefail

mkdir -p "${1:-colearn-dev}"
DIR=$(cd "${1:-colearn-dev}" && pwd)
cd "$(dirname "$0")/.."                      # the checkout
COLEARN=${COLEARN:-.venv/bin/colearn}
READY_LIMIT=${READY_LIMIT:-300}              # seconds colearn dev may take to be ready

# `colearn` and `python` are the venv's, as after `source .venv/bin/activate`.
found=$(command -v "$COLEARN") || { echo "error: no colearn at $COLEARN (make demo)" >&2; exit 1; }
PATH="$(cd "$(dirname "$found")" && pwd):$PATH"

say() { printf '\n== %s\n' "$*"; }
fail() { echo "error: $*" >&2; exit 1; }

# Stop what this script started, on any exit: the agents, then colearn dev (on SIGTERM
# it stops anvil and js-ipfs itself), and wait until they are all gone.
DEV_PID=
AGENT_PIDS=()
stop_all() {
    local pid
    for pid in "${AGENT_PIDS[@]}" $DEV_PID; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${AGENT_PIDS[@]}" $DEV_PID; do
        wait "$pid" 2>/dev/null || true
    done
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "1. colearn dev: anvil, js-ipfs, three funded stakeholders, the contract, a spec"
colearn dev --out "$DIR" > "$DIR/dev.log" 2>&1 &
DEV_PID=$!
echo "colearn dev (pid $DEV_PID), its output in $DIR/dev.log"
# Wait for its `ready` line (it prints it once everything is up).
deadline=$((SECONDS + READY_LIMIT))
until grep -q '^ready' "$DIR/dev.log"; do
    kill -0 "$DEV_PID" 2>/dev/null || { cat "$DIR/dev.log" >&2; fail "colearn dev exited"; }
    ((SECONDS < deadline)) || { cat "$DIR/dev.log" >&2; fail "colearn dev not ready in ${READY_LIMIT}s"; }
    sleep 0.5
done
cat "$DIR/dev.log"

# What it printed is also in commands.sh: $RPC, $ADDR (the contract), $STORE, and the
# commands to paste: $CREATE, one agent per stakeholder in $AGENTS, $AUDIT.
# shellcheck source=/dev/null
source "$DIR/commands.sh"
for command in "$CREATE" "${AGENTS[@]}" "$AUDIT"; do   # the very lines it printed
    grep -qxF -- "$command" "$DIR/dev.log" || fail "colearn dev did not print: $command"
done

say "2. Create the experiment (prints its id: 1)"
echo "$CREATE"
id=$(eval "$CREATE")
[[ $id == 1 ]] || fail "experiment create printed '$id', not 1"

say "3. One agent per stakeholder, each its own process (here in the background)"
for i in "${!AGENTS[@]}"; do
    n=$((i + 1))
    echo "${AGENTS[$i]}"
    # exec: the background process is the agent itself, so the trap's SIGTERM reaches it
    (eval "exec ${AGENTS[$i]}") > "$DIR/agent$n.json" 2> "$DIR/agent$n.log" &
    AGENT_PIDS+=("$!")
    echo "agent $n (pid $!), its output in $DIR/agent$n.log"
done
# Each agent exits 0 once the experiment is finished, its last line a JSON summary.
for i in "${!AGENT_PIDS[@]}"; do
    n=$((i + 1))
    if ! wait "${AGENT_PIDS[$i]}"; then
        cat "$DIR/agent$n.log" >&2
        fail "agent $n failed"
    fi
    echo "agent $n: $(tail -n 1 "$DIR/agent$n.json")"
done
AGENT_PIDS=()

say "4. Audit the experiment from the chain alone (the weights checked in IPFS)"
echo "$AUDIT"
eval "$AUDIT"

say "5. Where the experiment stands"
colearn experiment status --rpc "$RPC" --contract "$ADDR" --experiment 1

say "6. The final model, verified against the digest on chain"
colearn model get --rpc "$RPC" --contract "$ADDR" --experiment 1 --store "$STORE" \
    --out "$DIR/model.safetensors"

say "7. Load it (the README's numpy snippet, as it stands)"
(cd "$DIR" && python - <<'EOF'
from safetensors.numpy import load_file                     # numpy

arrays = load_file("model.safetensors")  # {name: numpy array}
for name, array in arrays.items():
    print(name, array.shape, array.dtype)
EOF
)

say "done: stopping colearn dev (anvil, js-ipfs); $DIR keeps the keystores, logs and model"
