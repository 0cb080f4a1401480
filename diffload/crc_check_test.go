package diffload

import "testing"

// TestCRCCheckValue pins the checksum to the CRC-32C standard check value
// that docs/FORMAT.md quotes.
func TestCRCCheckValue(t *testing.T) {
	if got := crc([]byte("123456789")); got != 0xE3069283 {
		t.Fatalf("CRC-32C check value %08x, want e3069283", got)
	}
}
