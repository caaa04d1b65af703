# common.sh — what the optimize test scripts share (sourced after they set WORK and SKIP):
# the skips when node or the Fashion-MNIST data are missing, and three small checkers.
command -v node >/dev/null || { echo "node is not installed: skipping"; exit $SKIP; }
[ -f $DATA/t10k-images-idx3-ubyte.gz ] || { echo "no Fashion-MNIST data: skipping"; exit $SKIP; }

check() { # check NAME COMMAND...: run, report, count failures
    local name=$1; shift
    if "$@" > "$WORK/last.log" 2>&1; then echo "ok   $name"
    else echo "FAIL $name"; sed 's/^/     /' "$WORK/last.log" | tail -20; fail=$((fail + 1)); fi
}
expect_rc() { # expect_rc CODE COMMAND...
    local want=$1; shift
    "$@" > /dev/null 2>&1
    local rc=$?
    [ $rc -eq "$want" ] || { echo "exit code $rc, expected $want: $*"; return 1; }
}
json() { # json FILE EXPRESSION-over-r: true/false
    node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
             const ok = eval(process.argv[2]); if (!ok) { console.log(JSON.stringify(r)); process.exit(1); }' "$1" "$2"
}
