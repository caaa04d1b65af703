#!/usr/bin/env bash
# check_floor.sh FERRY SUITE DIR FLOORS — runs `ferry conformance` on one suite and fails if
# fewer tests pass than the committed floor (tests/conformance/floors.txt). The floor only rises:
# when more tests pass, raise it in the same commit.
set -u
ferry=$1 suite=$2 dir=$3 floors=$4
floor=$(awk -v s="$suite" '$1 == s {print $2}' "$floors")
[ -n "$floor" ] || { echo "no floor for suite $suite in $floors"; exit 1; }
out=$("$ferry" conformance --quiet "$dir")
echo "$out"
summary=$(echo "$out" | tail -n 1)
passed=$(echo "$summary" | sed -n 's/.* \([0-9][0-9]*\) passed.*/\1/p')
[ -n "$passed" ] || { echo "could not read the pass count from: $summary"; exit 1; }
echo "suite $suite: $passed passed, floor $floor"
if [ "$passed" -lt "$floor" ]; then
  echo "FAIL: $suite dropped below its floor ($passed < $floor)"
  exit 1
fi
