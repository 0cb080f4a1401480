//go:build cgo && !purego

// The C kernels live in csrc/; cgo only compiles .c files of the package
// directory, so this file pulls them in. The Go build cache only sees this
// directory: the digest below follows csrc/ (TestCSourcesStamp checks it),
// so that editing csrc/ also changes this file and forces a recompile.
//
// csrc digest: e50c41fcad82d6f37ec6cc50540b0896
#include "../csrc/kernels.c"
