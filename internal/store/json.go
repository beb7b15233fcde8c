package store

import (
	"encoding/json"
	"errors"
)

// GetJSON reads the JSON value at key into a T; ok is false (and err nil) when the key does not
// exist.
func GetJSON[T any](tx Tx, key string) (v T, ok bool, err error) {
	kv, err := tx.Get(key)
	if errors.Is(err, ErrNotFound) {
		return v, false, nil
	}
	if err != nil {
		return v, false, err
	}
	return v, true, json.Unmarshal(kv.Value, &v)
}

// PutJSON writes v as JSON at key.
func PutJSON(tx Tx, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Put(key, b)
}
