// Package storetest is the conformance suite that every store.Store backend runs, so that a new
// backend (etcd, later) is proven by a few lines of test.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nubis/nubis/internal/store"
)

// Factory opens an empty store for one test; the suite closes it.
type Factory func(t *testing.T) store.Store

// Run runs the conformance suite against the backend that open creates.
func Run(t *testing.T, open Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"GetMissing", testGetMissing},
		{"CreatePutGetDelete", testCreatePutGetDelete},
		{"ListPrefixAfterLimit", testList},
		{"RollbackOnError", testRollback},
		{"TxSeesOwnWrites", testTxSeesOwnWrites},
		{"ConcurrentIncrements", testConcurrentIncrements},
		{"View", testView},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			defer s.Close()
			tc.fn(t, s)
		})
	}
}

func put(t *testing.T, s store.Store, kvs ...string) {
	t.Helper()
	err := s.Update(context.Background(), func(tx store.Tx) error {
		for i := 0; i < len(kvs); i += 2 {
			if err := tx.Put(kvs[i], []byte(kvs[i+1])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("put: %v", err)
	}
}

func testGetMissing(t *testing.T, s store.Store) {
	_, err := s.Get(context.Background(), "nope")
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get missing: got %v, want ErrNotFound", err)
	}
}

func testCreatePutGetDelete(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.Create("a", []byte("1")) }); err != nil {
		t.Fatal(err)
	}
	kv, err := s.Get(ctx, "a")
	if err != nil || string(kv.Value) != "1" || kv.CreateRevision == 0 || kv.ModRevision != kv.CreateRevision {
		t.Fatalf("after create: %+v %v", kv, err)
	}
	err = s.Update(ctx, func(tx store.Tx) error { return tx.Create("a", []byte("2")) })
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("second Create: got %v, want ErrExists", err)
	}
	put(t, s, "a", "3")
	kv2, err := s.Get(ctx, "a")
	if err != nil || string(kv2.Value) != "3" || kv2.CreateRevision != kv.CreateRevision || kv2.ModRevision <= kv.ModRevision {
		t.Fatalf("after put: %+v %v (was %+v)", kv2, err, kv)
	}
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.Delete("a") }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	err = s.Update(ctx, func(tx store.Tx) error { return tx.Delete("a") })
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete missing: got %v, want ErrNotFound", err)
	}
}

func keys(kvs []store.KV) []string {
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i] = kv.Key
	}
	return out
}

func testList(t *testing.T, s store.Store) {
	ctx := context.Background()
	put(t, s, "p/b", "", "p/a", "", "p/c", "", "p0", "", "o", "", "p/\xff", "")
	tests := []struct {
		prefix, after string
		limit         int
		want          string
	}{
		{"p/", "", 0, "[p/a p/b p/c p/\xff]"},
		{"p/", "p/a", 0, "[p/b p/c p/\xff]"},
		{"p/", "", 2, "[p/a p/b]"},
		{"p/", "p/b", 1, "[p/c]"},
		{"p", "", 0, "[p/a p/b p/c p/\xff p0]"},
		{"", "", 0, "[o p/a p/b p/c p/\xff p0]"},
		{"q", "", 0, "[]"},
	}
	for _, tc := range tests {
		got, err := s.List(ctx, tc.prefix, tc.after, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if g := fmt.Sprint(keys(got)); g != tc.want {
			t.Errorf("List(%q, %q, %d) = %s, want %s", tc.prefix, tc.after, tc.limit, g, tc.want)
		}
	}
}

func testRollback(t *testing.T, s store.Store) {
	ctx := context.Background()
	put(t, s, "keep", "1")
	boom := errors.New("boom")
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.Put("new", []byte("x")); err != nil {
			return err
		}
		if err := tx.Put("keep", []byte("2")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	if _, err := s.Get(ctx, "new"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("write of a failed transaction is visible: %v", err)
	}
	if kv, _ := s.Get(ctx, "keep"); string(kv.Value) != "1" {
		t.Fatalf("keep = %q after rollback", kv.Value)
	}
}

func testTxSeesOwnWrites(t *testing.T, s store.Store) {
	err := s.Update(context.Background(), func(tx store.Tx) error {
		if err := tx.Put("x/1", []byte("a")); err != nil {
			return err
		}
		kv, err := tx.Get("x/1")
		if err != nil || string(kv.Value) != "a" {
			return fmt.Errorf("tx Get own write: %+v %v", kv, err)
		}
		l, err := tx.List("x/", "", 0)
		if err != nil || len(l) != 1 {
			return fmt.Errorf("tx List own write: %v %v", l, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testConcurrentIncrements checks that transactions are serializable: concurrent read-modify-write
// increments of one counter lose no update.
func testConcurrentIncrements(t *testing.T, s store.Store) {
	ctx := context.Background()
	put(t, s, "n", "0")
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				err := s.Update(ctx, func(tx store.Tx) error {
					kv, err := tx.Get("n")
					if err != nil {
						return err
					}
					var n int
					fmt.Sscan(string(kv.Value), &n)
					return tx.Put("n", []byte(fmt.Sprint(n+1)))
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	kv, err := s.Get(ctx, "n")
	if err != nil || string(kv.Value) != fmt.Sprint(workers*each) {
		t.Fatalf("counter = %q (%v), want %d", kv.Value, err, workers*each)
	}
}

func testClosed(t *testing.T, s store.Store) {
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(context.Background(), "a"); err == nil {
		t.Fatal("Get after Close succeeded")
	}
	if err := s.Update(context.Background(), func(store.Tx) error { return nil }); err == nil {
		t.Fatal("Update after Close succeeded")
	}
}

func testView(t *testing.T, s store.Store) {
	ctx := context.Background()
	put(t, s, "v/a", "1", "v/b", "2")
	err := s.View(ctx, func(tx store.Tx) error {
		kv, err := tx.Get("v/a")
		if err != nil || string(kv.Value) != "1" {
			return fmt.Errorf("View Get: %+v %v", kv, err)
		}
		if l, err := tx.List("v/", "", 0); err != nil || len(l) != 2 {
			return fmt.Errorf("View List: %v %v", l, err)
		}
		if err := tx.Put("v/c", []byte("3")); err == nil {
			return errors.New("a write in View succeeded")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "v/c"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused write is visible: %v", err)
	}
	// A View runs while a writer holds its transaction.
	inUpdate, viewDone := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.Update(ctx, func(tx store.Tx) error {
			close(inUpdate)
			select {
			case <-viewDone:
			case <-time.After(10 * time.Second):
				return errors.New("a View could not run while a writer held its transaction")
			}
			return tx.Put("v/a", []byte("9"))
		})
	}()
	<-inUpdate
	if err := s.View(ctx, func(tx store.Tx) error { _, err := tx.Get("v/a"); return err }); err != nil {
		t.Fatal(err)
	}
	close(viewDone)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
