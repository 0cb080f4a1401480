// Package diffload implements the DM-Sparse block store and the runtime that
// switches between task variants by loading only the block versions that are
// not already resident.
//
// The store (see docs/FORMAT.md) holds every distinct block version once, at
// an offset aligned for O_DIRECT, followed by the small dense tensors
// (biases, norms), a manifest mapping each task's tensors to their BSR
// structure and block versions, and a footer that locates everything. All of
// it is covered by CRC-32C (Castagnoli) checksums. StoreWriter writes a store
// atomically in bounded memory; OpenStore validates one before use.
//
// The Runtime keeps a pool of fixed-size slots in an arena mapped outside the
// Go heap, with a byte budget it never exceeds. Switch computes the diff set
// (the target's versions that are not resident), evicts by policy without
// touching the target's versions or any block a reader still holds,
// coalesces the diff set into extents, reads them with batched pread/preadv
// under O_DIRECT straight into pool slots with several requests in flight,
// verifies every block's CRC and publishes the task's paged bsr.View values
// atomically. Begin exposes the same switch pipelined by layer; Prefetch
// loads a likely next task into free slots in the background.
package diffload
