#!/bin/sh
# build.sh -- install what is missing, build nabla, and run something with it.
#
#   ./build.sh example    build, then train Nielsen's network on the bundled digits
#                         (examples/mnist, 10 epochs)
#   ./build.sh check      build, then run the whole test suite (make check), the MPI
#                         tests included (tests/mpi.sh: mpirun with 1, 2 and 3 ranks)
#   ./build.sh sanitize   the test suite built with AddressSanitizer and UBSan
#   ./build.sh valgrind   the test suite under valgrind's memcheck, leaks included
#   ./build.sh tsan       the threads and internals tests under ThreadSanitizer
#   ./build.sh plain      the test suite built as plain C11 (-std=c11 -pedantic), with the
#                         plain C matrix kernels only (configure --disable-simd)
#   ./build.sh clang      the test suite built with clang
#   ./build.sh distcheck  make distcheck: the release tarball builds and passes its tests
#   ./build.sh install    install into a staging directory, build programs against both
#                         libraries with pkg-config (C11 -pedantic and C++), run them
#                         (and, with MPI, one against libnabla_mpi under mpirun),
#                         check that they export nothing but nb_ symbols and that only
#                         libnabla_nn needs zlib, run the installed nabla selftest; then
#                         the same consumers linked statically (pkg-config --static)
#   ./build.sh fuzz       libFuzzer on the IDX, model and tensor file loaders, on the
#                         tape's API and on the expression parser: every fuzz/fuzz_*.c,
#                         built by make
#                         in build-fuzz/ (configure CC=clang --enable-fuzzers),
#                         FUZZ_SECONDS (default 60) each, then their regression inputs
#                         once each
#
# Every mode that runs the test suite, and install, installs Open MPI (libopenmpi-dev,
# openmpi-bin) when it is missing, so that libnabla_mpi is built and tested; configure
# --without-mpi (NABLA_CONFIGURE_FLAGS) leaves it out. The sanitizer and valgrind modes
# check the MPI tests' ranks too (tests/mpi.sh, NABLA_MPI_CHECK).
# Each build lives in its own directory (build/, build-sanitize/, build-valgrind/,
# build-plain/, build-clang/, build-fuzz/). Missing packages are installed with apt-get when running as root;
# otherwise the script says which ones to install. Check is needed only by the modes that
# run the test suite (configure without it builds everything but the tests).
# Extra configure arguments: NABLA_CONFIGURE_FLAGS; MAKE_WARN replaces the warning flags
# (.ci/run sets "-Wall -Wextra -Werror").
set -eu

cd "$(dirname "$0")"
mode=${1:-check}
jobs=$(nproc 2>/dev/null || echo 2)

# Debian packages needed, and a command that tells whether each is already there.
need_packages() {
	missing=""
	command -v autoreconf >/dev/null 2>&1 || missing="$missing autoconf"
	command -v automake >/dev/null 2>&1 || missing="$missing automake"
	command -v libtoolize >/dev/null 2>&1 || missing="$missing libtool"
	command -v pkg-config >/dev/null 2>&1 || missing="$missing pkg-config"
	case $mode in
	example | install | fuzz) ;;  # these run no test suite: Check is not needed
	*) pkg-config --exists check 2>/dev/null || missing="$missing check" ;;
	esac
	if ! pkg-config --exists libxxhash 2>/dev/null; then missing="$missing libxxhash-dev"; fi
	if ! pkg-config --exists zlib 2>/dev/null; then missing="$missing zlib1g-dev"; fi
	# Open MPI, for libnabla_mpi and its tests (make check runs them under mpirun)
	case $mode in
	example | tsan | fuzz) ;;
	*)
		pkg-config --exists mpi-c 2>/dev/null || pkg-config --exists ompi-c 2>/dev/null ||
			missing="$missing libopenmpi-dev"
		command -v mpirun >/dev/null 2>&1 || missing="$missing openmpi-bin"
		;;
	esac
	if [ "$mode" = valgrind ] && ! command -v valgrind >/dev/null 2>&1; then
		missing="$missing valgrind"
	fi
	if [ "$mode" = install ] && ! command -v g++ >/dev/null 2>&1; then
		missing="$missing g++"
	fi
	if [ "$mode" = clang ] && ! command -v clang >/dev/null 2>&1; then
		missing="$missing clang"
	fi
	if [ "$mode" = fuzz ]; then
		command -v clang >/dev/null 2>&1 || missing="$missing clang"
		rt=$(clang -print-resource-dir 2>/dev/null)/lib/linux/libclang_rt.fuzzer-$(uname -m).a
		[ -f "$rt" ] || missing="$missing libclang-rt-14-dev"
	fi
	echo "$missing"
}

install_missing() {
	missing=$(need_packages)
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "build.sh: missing packages:$missing" >&2
		echo "build.sh: install them with: sudo apt-get install$missing" >&2
		exit 1
	fi
	echo "build.sh: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

# Configure (once) directory $1 with extra configure arguments after it.
configure_in() {
	dir=$1
	shift
	[ -x configure ] && [ configure -nt configure.ac ] || autoreconf -fi >/dev/null
	mkdir -p "$dir"
	# a directory configured before Check or MPI was installed is configured again
	if [ -f "$dir/Makefile" ] && grep -q '^CHECK_LIBS = *$' "$dir/Makefile" &&
		pkg-config --exists check 2>/dev/null; then
		rm "$dir/Makefile"
	fi
	if [ -f "$dir/Makefile" ] && grep -q '^MPI_PC = *$' "$dir/Makefile" &&
		{ pkg-config --exists mpi-c 2>/dev/null || pkg-config --exists ompi-c 2>/dev/null; }; then
		rm "$dir/Makefile"
	fi
	if [ ! -f "$dir/Makefile" ]; then
		# shellcheck disable=SC2086
		(cd "$dir" && ../configure -q "$@" ${NABLA_CONFIGURE_FLAGS:-})
	fi
}

# Configure (once) and build in directory $1 with extra configure arguments after it.
build_in() {
	configure_in "$@"
	make -s -C "$1" -j"$jobs" ${MAKE_WARN:+WARN_CFLAGS="$MAKE_WARN"}
}

# make check in $1; on failure print the logs of the suites that failed.
check_in() {
	dir=$1
	shift
	if ! make -s -C "$dir" -j"$jobs" check ${MAKE_WARN:+WARN_CFLAGS="$MAKE_WARN"} "$@"; then
		for log in "$dir"/tests/*.log; do
			grep -q '^FAIL\|^ERROR' "${log%.log}.trs" 2>/dev/null && cat "$log"
		done
		exit 1
	fi
	grep -h 'Checks:' "$dir"/tests/test_*.log
	grep -h '^mpi.sh: two runs' "$dir"/tests/mpi.log 2>/dev/null || true
}

# The libFuzzer targets fuzz/fuzz_*.c, built by make in build-fuzz/ (configured with
# CC=clang --enable-fuzzers: the targets and an instrumented copy of the libraries);
# every fuzz/fuzz_*.c present must have its rules in Makefile.am.
fuzz_build() {
	fuzz_targets=""
	for src in fuzz/fuzz_*.c; do
		fuzz_targets="$fuzz_targets $(basename "$src" .c)"
	done
	configure_in build-fuzz CC=clang --enable-fuzzers CFLAGS="-g -O1"
	for target in $fuzz_targets; do
		if ! grep -q "^fuzz_${target}_SOURCES" Makefile.am; then
			echo "build.sh: fuzz/$target.c has no rules in Makefile.am" >&2
			exit 1
		fi
	done
	# shellcheck disable=SC2046
	make -s -C build-fuzz -j"$jobs" ${MAKE_WARN:+WARN_CFLAGS="$MAKE_WARN"} \
		$(for target in $fuzz_targets; do echo "fuzz/$target"; done)
}

# Fuzz target $1 for FUZZ_SECONDS on a copy of fuzz/corpus/$1/ (libFuzzer adds what it
# finds to the copy, never to the committed corpus), with the dictionary fuzz/$1.dict
# when there is one (the tokens of a text format), then run it once on each file of
# fuzz/regressions/$1/. libFuzzer exits non-zero on a crash, a leak, a timeout or a
# sanitizer report, and leaves the input in build-fuzz/artifacts/$1/. To keep a crasher:
# fix the bug, then copy that file into fuzz/regressions/$1/ under a name saying what it
# caught (and add a test of the fix beside the others in tests/).
fuzz_run() {
	name=$1
	work=build-fuzz/work/$name
	art=build-fuzz/artifacts/$name/
	log=build-fuzz/fuzz_$name.log
	rm -rf "$work" "$art"
	mkdir -p "$work" "$art"
	cp fuzz/corpus/"$name"/* "$work"/
	dict=
	[ -f fuzz/"$name".dict ] && dict=-dict=fuzz/$name.dict
	# shellcheck disable=SC2086
	if ! "build-fuzz/fuzz/fuzz_$name" -max_total_time="${FUZZ_SECONDS:-60}" -timeout=10 $dict \
		-artifact_prefix="$art" "$work" >"$log" 2>&1; then
		tail -n 50 "$log" >&2
		echo "build.sh: fuzz_$name failed (log $log, input in $art)" >&2
		exit 1
	fi
	echo "fuzz_$name: $(grep 'DONE' "$log" | tail -n 1)"
	set -- fuzz/regressions/"$name"/*
	[ -e "$1" ] || return 0
	log=build-fuzz/fuzz_$name.regressions.log
	if ! "build-fuzz/fuzz/fuzz_$name" -timeout=10 -artifact_prefix="$art" "$@" >"$log" 2>&1; then
		tail -n 50 "$log" >&2
		echo "build.sh: fuzz_$name failed on a regression input (log $log)" >&2
		exit 1
	fi
	echo "fuzz_$name: $# regression inputs pass"
}

install_missing
case $mode in
example)
	build_in build
	./build/examples/mnist --epochs 10
	;;
check)
	build_in build
	make -s -C build -j"$jobs" examples/bp_equations examples/gradcheck
	check_in build
	;;
sanitize)
	# Static linking keeps the tests plain executables (not libtool wrappers).
	flags="-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined"
	flags="$flags -fno-sanitize-recover=all"
	build_in build-sanitize --disable-shared CFLAGS="$flags" LDFLAGS="-fsanitize=address,undefined"
	# tests/mpi.sh reads the reports of the MPI tests itself (Open MPI keeps memory to the end)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 CK_FORK=no NABLA_MPI_CHECK=asan \
		check_in build-sanitize
	;;
valgrind)
	build_in build-valgrind --disable-shared CFLAGS="-g -O1"
	vg="valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=all"
	vg="$vg --show-leak-kinds=all"
	# tests/mpi.sh runs valgrind under mpirun itself, and reads its reports
	CK_FORK=no NABLA_MPI_CHECK=valgrind check_in build-valgrind LOG_COMPILER="$vg"
	;;
tsan)
	# test_threads: tapes and networks on several threads at once; test_internal: the
	# kernels' thread pool on its own
	build_in build-tsan --disable-shared CFLAGS="-g -O1 -fsanitize=thread" \
		LDFLAGS="-fsanitize=thread"
	TSAN_OPTIONS=halt_on_error=1 CK_FORK=no check_in build-tsan \
		TESTS="tests/test_threads tests/test_internal"
	;;
plain)
	build_in build-plain --disable-simd CFLAGS="-O2 -std=c11 -pedantic"
	check_in build-plain
	;;
clang)
	build_in build-clang CC=clang
	check_in build-clang
	;;
distcheck)
	build_in build
	make -s -C build distcheck
	;;
install)
	build_in build
	stage=$(pwd)/build/stage
	rm -rf "$stage"
	make -s -C build install DESTDIR="$stage" >/dev/null
	names="nabla nabla_nn"
	[ -n "$(find "$stage" -name libnabla_mpi.so)" ] && names="$names nabla_mpi"
	for name in $names; do
		lib=$(find "$stage" -name "lib$name.so" | head -n 1)
		bad=$(nm -D --defined-only "$lib" | awk '$3 !~ /^nb_/ { print $3 }')
		if [ -n "$bad" ]; then
			echo "build.sh: lib$name exports symbols without the nb_ prefix: $bad" >&2
			exit 1
		fi
	done
	# zlib is the network library's dependency only
	if ldd "$(find "$stage" -name libnabla.so | head -n 1)" | grep -q libz; then
		echo "build.sh: libnabla links zlib" >&2
		exit 1
	fi
	libdir=$(dirname "$(find "$stage" -name libnabla.so | head -n 1)")
	pc=$(dirname "$(find "$stage" -name nabla.pc | head -n 1)")
	pkg() { PKG_CONFIG_PATH=$pc PKG_CONFIG_SYSROOT_DIR=$stage pkg-config "$@"; }
	# shellcheck disable=SC2046
	cc -std=c11 -pedantic -Wall -Wextra -Werror tests/install/consumer.c \
		$(pkg --cflags --libs nabla) -o build/consumer
	# shellcheck disable=SC2046
	cc -std=c11 -pedantic -Wall -Wextra -Werror tests/install/consumer_nn.c \
		$(pkg --cflags --libs nabla_nn) -o build/consumer_nn
	# shellcheck disable=SC2046
	g++ -std=c++11 -pedantic -Wall -Wextra -Werror tests/install/consumer.cpp \
		$(pkg --cflags --libs nabla_nn) -o build/consumer-cpp
	(cd build && LD_LIBRARY_PATH=$libdir ./consumer && LD_LIBRARY_PATH=$libdir ./consumer_nn &&
		LD_LIBRARY_PATH=$libdir ./consumer-cpp)
	# the MPI library, when it was built: its .pc file requires the MPI's, which lives
	# outside the stage, so nabla's three .pc files are copied with the stage in their
	# prefix rather than the whole sysroot moved
	if [ -n "$(find "$stage" -name libnabla_mpi.so)" ]; then
		relocated=build/pc-relocated
		rm -rf "$relocated"
		mkdir -p "$relocated"
		for name in nabla nabla_nn nabla_mpi; do
			sed "s|^prefix=|prefix=$stage|" "$pc/$name.pc" >"$relocated/$name.pc"
		done
		# shellcheck disable=SC2046
		cc -std=c11 -Wall -Wextra -Werror tests/install/consumer_mpi.c \
			$(PKG_CONFIG_PATH=$relocated pkg-config --cflags --libs nabla_mpi) \
			-o build/consumer_mpi
		root=
		[ "$(id -u)" = 0 ] && root=--allow-run-as-root
		LD_LIBRARY_PATH=$libdir mpirun $root --oversubscribe -x LD_LIBRARY_PATH -np 2 \
			build/consumer_mpi
	fi
	# the installed command checks the installed library
	nabla=$(find "$stage" -type f -name nabla -perm -u+x | head -n 1)
	LD_LIBRARY_PATH=$libdir "$nabla" selftest
	# static consumers: only the archives installed, linked from pkg-config --static
	build_in build-static --disable-shared
	stage=$(pwd)/build-static/stage
	rm -rf "$stage"
	make -s -C build-static install DESTDIR="$stage" >/dev/null
	pc=$(dirname "$(find "$stage" -name nabla.pc | head -n 1)")
	# shellcheck disable=SC2046
	cc -std=c11 tests/install/consumer.c $(pkg --cflags --libs --static nabla) \
		-o build-static/consumer
	# shellcheck disable=SC2046
	cc -std=c11 tests/install/consumer_nn.c $(pkg --cflags --libs --static nabla_nn) \
		-o build-static/consumer_nn
	(cd build-static && ./consumer && ./consumer_nn)
	if ldd build-static/consumer_nn | grep -q libnabla; then
		echo "build.sh: the static consumer links a shared libnabla" >&2
		exit 1
	fi
	;;
fuzz)
	fuzz_build
	for target in $fuzz_targets; do
		fuzz_run "${target#fuzz_}"
	done
	;;
*)
	echo "usage: $0 example|check|sanitize|valgrind|tsan|distcheck|install|fuzz" >&2
	exit 2
	;;
esac
