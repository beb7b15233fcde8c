package revert

import (
	"slices"
	"testing"
)

func TestFailRunsInReverse(t *testing.T) {
	var got []int
	func() {
		r := New()
		defer r.Fail()
		for i := range 3 {
			r.Add(func() { got = append(got, i) })
		}
	}()
	if !slices.Equal(got, []int{2, 1, 0}) {
		t.Errorf("undo order %v", got)
	}
}

func TestSuccessKeeps(t *testing.T) {
	ran := false
	r := New()
	r.Add(func() { ran = true })
	undo := r.Clone()
	r.Success()
	r.Fail()
	if ran {
		t.Fatal("undo ran after Success")
	}
	undo.Fail()
	if !ran {
		t.Error("the clone did not keep the undo")
	}
}
