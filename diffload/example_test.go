package diffload_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/dmsparse/dmsparse/bsr"
	"github.com/dmsparse/dmsparse/diffload"
)

// Example packs two tasks that share one of their two blocks, then switches
// between them: the second switch reads only the block that differs.
func Example() {
	dir, err := os.MkdirTemp("", "diffload-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "family.dms")

	w, err := diffload.CreateStore(path, diffload.WriterOptions{R: 32, C: 32})
	if err != nil {
		log.Fatal(err)
	}
	block := func(v float32) []float32 {
		b := make([]float32, 32*32)
		for i := range b {
			b[i] = v
		}
		return b
	}
	shared, _ := w.AddVersion(block(1))
	onlyA, _ := w.AddVersion(block(2))
	onlyB, _ := w.AddVersion(block(3))
	for _, t := range []struct {
		name string
		own  uint32
	}{{"A", onlyA}, {"B", onlyB}} {
		err := w.AddTask(diffload.TaskSpec{Name: t.name, Tensors: []diffload.TensorSpec{{
			Name: "w", Rows: 64, Cols: 32, Layer: 0,
			Indptr: []int32{0, 1, 2}, Indices: []int32{0, 0}, Versions: []uint32{shared, t.own},
		}}})
		if err != nil {
			log.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		log.Fatal(err)
	}

	rt, err := diffload.Open(path, diffload.Options{Budget: 2 * 4096})
	if err != nil {
		log.Fatal(err)
	}
	defer rt.Close()
	ctx := context.Background()
	for _, task := range []string{"A", "B"} {
		st, err := rt.Switch(ctx, task)
		if err != nil {
			log.Fatal(err)
		}
		tv, err := rt.Acquire()
		if err != nil {
			log.Fatal(err)
		}
		v, _ := tv.Tensor("w")
		x := make([]float32, 32)
		x[0] = 1
		y := make([]float32, 64)
		if err := bsr.Mul(y, v, x, 1, bsr.Options{Workers: 1}); err != nil {
			log.Fatal(err)
		}
		tv.Release()
		fmt.Printf("task %s: read %d blocks (%d bytes), reused %d; y[0]=%g y[32]=%g\n", task, st.Versions, st.BytesRead, st.Reused, y[0], y[32])
	}
	// Output:
	// task A: read 2 blocks (8192 bytes), reused 0; y[0]=1 y[32]=2
	// task B: read 1 blocks (4096 bytes), reused 1; y[0]=1 y[32]=3
}
