#!/bin/sh
# Instructions per call under callgrind, client and server together: two
# runs of `--calls N1` and `--calls N2`, and the difference in instructions
# divided by N2 - N1, so that start-up and warm-up cancel out.
#
# usage: teleport-bench/percall.sh SYSTEM [PAYLOAD] [SHAPE] [N1] [N2]
#   e.g. teleport-bench/percall.sh teleport/bincode 16 1x64
# Build first: cargo build --release --manifest-path teleport-bench/Cargo.toml
# The callgrind files stay in $OUT (default target/percall) for callgrind_annotate.
set -e
here=$(dirname "$0")
BIN=${BIN:-${CARGO_TARGET_DIR:-$here/target}/release/teleport-bench}
SYS=$1; PAY=${2:-16}; SHAPE=${3:-1x64}; N1=${4:-20000}; N2=${5:-60000}
OUT=${OUT:-$here/target/percall}
mkdir -p "$OUT"
tag=$(echo "$SYS-$PAY-$SHAPE" | tr '/' '_')
for n in $N1 $N2; do
  valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.$tag.$n" "$BIN" --calls "$n" \
    --warmup-calls 2000 --systems "$SYS" --payloads "$PAY" --shapes "$SHAPE" \
    > "$OUT/stdout.$tag.$n" 2> "$OUT/stderr.$tag.$n"
done
i1=$(grep -m1 '^summary:' "$OUT/cg.$tag.$N1" | awk '{print $2}')
i2=$(grep -m1 '^summary:' "$OUT/cg.$tag.$N2" | awk '{print $2}')
echo "$SYS $PAY B $SHAPE: $(( (i2 - i1) / (N2 - N1) )) instructions per call ($i1 at $N1 calls, $i2 at $N2)"
