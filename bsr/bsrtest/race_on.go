//go:build race

package bsrtest

// raceEnabled is true under the race detector, whose sync.Pool drops items
// at random, so steady-state allocation counts are meaningless there.
const raceEnabled = true
