#!/bin/sh
# tests/mpi.sh -- run tests/test_mpi under mpirun with 1, 2 and 3 ranks (3 share this
# machine's cores: --oversubscribe), each twice, and check that the two runs of each
# count of ranks end with the same parameters, to the bit (the hash test_mpi prints).
#
# make check sets NABLA_TEST_MPI (the program) and MPIRUN. NABLA_MPI_CHECK=asan (a build
# with AddressSanitizer) or valgrind (each rank under valgrind's memcheck) looks for
# memory errors and leaks of nabla's own: Open MPI keeps some of its memory to the end of
# the process, from plug-ins it has unloaded by then, which no suppression file can name,
# so the reports are read here instead, and a leak counts when the code that allocated it
# is nabla's (lib/ or tests/), an error when nabla's code is anywhere in its stack.
set -u
prog=${NABLA_TEST_MPI:-tests/test_mpi}
mpirun=${MPIRUN:-mpirun}
check=${NABLA_MPI_CHECK:-}
srcdir=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v "$mpirun" >/dev/null 2>&1; then
	echo "mpi.sh: $mpirun not found: install Open MPI's mpirun (apt-get install openmpi-bin)" >&2
	exit 1
fi
# as root Open MPI needs --allow-run-as-root; shared memory between the ranks of this
# machine, no network
flags="--oversubscribe --mca btl self,vader"
[ "$(id -u)" = 0 ] && flags="--allow-run-as-root $flags"
# a failed assertion on one rank may leave the others waiting in a collective
limit=${NABLA_MPI_TIMEOUT:-900}
reports=test_mpi.reports
wrapper=
case $check in
asan)
	export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=1:abort_on_error=0:log_path=$PWD/$reports/asan"
	flags="$flags -x ASAN_OPTIONS"
	;;
valgrind)
	wrapper="valgrind -q --leak-check=full --show-leak-kinds=definite,indirect"
	wrapper="$wrapper --suppressions=/usr/share/openmpi/openmpi-valgrind.supp"
	wrapper="$wrapper --log-file=$PWD/$reports/vg.%p"
	;;
esac

# The source files of nabla, by name (valgrind names a frame's file without its folder).
ours=$(cd "$srcdir" && ls lib/*/*.c tests/*.c | sed 's|.*/||' | tr '\n' '|' | sed 's/|$//')

# Print the reports in $reports that are nabla's; status 1 when there is one.
nabla_reports() {
	set -- "$reports"/*
	[ -e "$1" ] || return 0
	awk -v ours="($ours):[0-9]+" -v kind="$check" '
	function flush() {
		if (record != "" && bad) { printf "%s\n", record; found = 1 }
		record = ""; bad = 0; frame = 0; leak = 0
	}
	# ASan: "Direct leak of 8 byte(s) ...", then frames #0 (the allocator) #1 (its caller)
	kind == "asan" && /(Direct|Indirect) leak of/ { flush(); leak = 1 }
	kind == "asan" && /ERROR: AddressSanitizer|runtime error:/ { flush(); bad = 1 }
	kind == "asan" && /^ *#[0-9]+ / {
		n = $1; sub("#", "", n)
		if ((leak && n == 1 || !leak) && $0 ~ ours) bad = 1
	}
	# valgrind: a record starts after a line with nothing but ==PID==
	kind == "valgrind" && /^==[0-9]+== *$/ { flush(); next }
	kind == "valgrind" && /definitely lost|indirectly lost/ { leak = 1 }
	kind == "valgrind" && /^==[0-9]+== +(at|by) 0x/ {
		frame++
		# a leak: the first frame outside the allocator; an error: any frame
		if ($0 ~ /vg_replace_malloc|vgpreload_memcheck/) frame--
		else if ((!leak || frame == 1) && $0 ~ ours) bad = 1
	}
	{ record = record $0 "\n" }
	END { flush(); exit found }' "$@"
}

status=0
for ranks in 1 2 3; do
	for run in 1 2; do
		log=test_mpi.$ranks.$run.out
		rm -rf "$reports"
		mkdir -p "$reports"
		# shellcheck disable=SC2086
		timeout "$limit" "$mpirun" $flags -np "$ranks" $wrapper "$prog" >"$log" 2>&1
		code=$?
		[ "$run" = 1 ] && cat "$log"
		# with reports to read, the tests' own verdict is the line rank 0 prints
		if [ -n "$check" ] && grep -q '^test_mpi: every rank passed' "$log"; then
			code=0
		fi
		if ! nabla_reports; then
			echo "mpi.sh: nabla's memory errors or leaks ($check) with $ranks ranks" >&2
			code=1
		fi
		if [ "$code" != 0 ]; then
			[ "$run" = 1 ] || cat "$log"
			echo "mpi.sh: test_mpi failed with $ranks ranks (run $run)" >&2
			status=1
		fi
	done
	a=$(grep '^parameters-hash' "test_mpi.$ranks.1.out" 2>/dev/null)
	b=$(grep '^parameters-hash' "test_mpi.$ranks.2.out" 2>/dev/null)
	if [ -z "$a" ] || [ "$a" != "$b" ]; then
		echo "mpi.sh: two runs with $ranks ranks differ: '$a' and '$b'" >&2
		status=1
	else
		echo "mpi.sh: two runs with $ranks ranks end alike: $a"
	fi
done
# The trainer as a user runs it, on the bundled digits: Nielsen's network and the
# convolutional one, each rank a part of the data; one line per epoch, from rank 0 only.
# (Not under the sanitizers or valgrind: the suite above covers the same calls.)
mnist=${NABLA_MNIST:-examples/mnist}
if [ -z "$check" ]; then
	for net in "" "--net conv"; do
		log=test_mpi.mnist.out
		# shellcheck disable=SC2086
		if ! timeout "$limit" "$mpirun" $flags -np 2 "$mnist" --mpi $net --epochs 2 \
			--train-limit 1000 --test-limit 400 >"$log" 2>&1; then
			cat "$log"
			echo "mpi.sh: mnist --mpi $net failed" >&2
			status=1
			continue
		fi
		cat "$log"
		lines=$(grep -c '^Epoch ' "$log")
		right=$(sed -n 's/^best: epoch [0-9]*, \([0-9]*\) \/ 400 .*/\1/p' "$log")
		if [ "$lines" != 2 ] || ! grep -q ', 2 ranks (MPI)' "$log" || [ -z "$right" ] ||
			[ "$right" -lt 200 ]; then
			echo "mpi.sh: mnist --mpi $net: expected 2 epoch lines, 2 ranks and over" \
				"200 / 400 right, got $lines lines and '${right:-no best line}'" >&2
			status=1
		fi
	done
fi
rm -rf test_mpi.*.out "$reports"
exit $status
