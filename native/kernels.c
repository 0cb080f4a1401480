//go:build cgo && !purego

// The C kernels live in csrc/; cgo only compiles .c files of the package
// directory, so this file pulls them in. The Go build cache only sees this
// directory: the digest below follows csrc/ (TestCSourcesStamp checks it),
// so that editing csrc/ also changes this file and forces a recompile.
//
// csrc digest: c1bba74be885c625288cf1e0cf7e7b1d
#include "../csrc/kernels.c"
