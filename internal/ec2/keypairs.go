package ec2

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/sshkey"
	"github.com/nubis/nubis/internal/store"
)

// keyPair is a key pair as stored. The private key is never stored.
type keyPair struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Type        string    `json:"type"`
	Fingerprint string    `json:"fingerprint"`
	PublicKey   string    `json:"publicKey"`
	Created     time.Time `json:"created"`
}

func (s *Service) keyPairKey(r *awsproto.Request, id string) string {
	return s.prefix(r) + "keypair/" + id
}

func (s *Service) keyNameKey(r *awsproto.Request, name string) string {
	return s.prefix(r) + "keypair-name/" + name
}

func itoa(n int) string { return strconv.Itoa(n) }

// validateKeyName checks a key name as EC2 does: 1 to 255 ASCII characters.
func validateKeyName(name *string) error {
	if name == nil || *name == "" {
		return missingParameter("KeyName")
	}
	if len(*name) > 255 {
		return invalidValue("KeyName", *name, "Length exceeds maximum of 255 characters.")
	}
	for _, c := range []byte(*name) {
		if c < 0x20 || c > 0x7e {
			return invalidValue("KeyName", *name, "Character sets beyond ASCII are not supported.")
		}
	}
	return nil
}

func notFoundByName(name string) error {
	return clientError("InvalidKeyPair.NotFound", "The key pair '%s' does not exist", name)
}

// findKeyPair looks a key pair up by id, or by name when byName is set; found is false when it does
// not exist.
func (s *Service) findKeyPair(tx store.Tx, r *awsproto.Request, ref string, byName bool) (kp keyPair, found bool, err error) {
	id := ref
	if byName {
		kv, err := tx.Get(s.keyNameKey(r, ref))
		if errors.Is(err, store.ErrNotFound) {
			return keyPair{}, false, nil
		}
		if err != nil {
			return keyPair{}, false, err
		}
		id = string(kv.Value)
	}
	kv, err := tx.Get(s.keyPairKey(r, id))
	if errors.Is(err, store.ErrNotFound) {
		return keyPair{}, false, nil
	}
	if err != nil {
		return keyPair{}, false, err
	}
	return kp, true, json.Unmarshal(kv.Value, &kp)
}

// insertKeyPair stores a new key pair, its name index and its tags in one transaction.
func (s *Service) insertKeyPair(ctx context.Context, r *awsproto.Request, kp keyPair, tags []storedTag) error {
	b, err := json.Marshal(kp)
	if err != nil {
		return err
	}
	return s.store.Update(ctx, func(tx store.Tx) error {
		if err := tx.Create(s.keyNameKey(r, kp.Name), []byte(kp.ID)); err != nil {
			if errors.Is(err, store.ErrExists) {
				return clientError("InvalidKeyPair.Duplicate", "The keypair '%s' already exists.", kp.Name)
			}
			return err
		}
		if err := tx.Create(s.keyPairKey(r, kp.ID), b); err != nil {
			return err
		}
		return putTags(tx, s.tagKey(r, kp.ID), tagList(nil).set(tags))
	})
}

type createKeyPairInput struct {
	KeyName           *string            `query:"KeyName"`
	KeyType           string             `query:"KeyType"`
	KeyFormat         string             `query:"KeyFormat"`
	TagSpecifications []TagSpecification `query:"TagSpecification"`
	DryRun            bool               `query:"DryRun"`
}

type createKeyPairOutput struct {
	KeyFingerprint string             `xml:"keyFingerprint"`
	KeyMaterial    string             `xml:"keyMaterial"`
	KeyName        string             `xml:"keyName"`
	KeyPairID      string             `xml:"keyPairId"`
	Tags           awsproto.List[Tag] `xml:"tagSet"`
}

func (s *Service) createKeyPair(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in createKeyPairInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if err := validateKeyName(in.KeyName); err != nil {
		return nil, err
	}
	typ := sshkey.TypeRSA
	switch in.KeyType {
	case "", "rsa":
	case "ed25519":
		typ = sshkey.TypeED25519
	default:
		return nil, invalidValue("KeyType", in.KeyType, "Valid values are: rsa, ed25519.")
	}
	format := sshkey.FormatPEM
	switch in.KeyFormat {
	case "", "pem":
	case "ppk":
		format = sshkey.FormatPPK
	default:
		return nil, invalidValue("KeyFormat", in.KeyFormat, "Valid values are: pem, ppk.")
	}
	tags, err := tagsFromSpecs(in.TagSpecifications, "key-pair")
	if err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	gen, err := sshkey.Generate(typ, format, *in.KeyName)
	if err != nil {
		return nil, fmt.Errorf("generate key pair: %w", err)
	}
	kp := keyPair{ID: newID("key"), Name: *in.KeyName, Type: string(typ), Fingerprint: gen.Fingerprint,
		PublicKey: gen.PublicKey, Created: s.now().UTC()}
	if err := s.insertKeyPair(ctx, r, kp, tags); err != nil {
		return nil, err
	}
	return createKeyPairOutput{KeyFingerprint: kp.Fingerprint, KeyMaterial: gen.PrivateKey, KeyName: kp.Name,
		KeyPairID: kp.ID, Tags: tagList(nil).set(tags).xml()}, nil
}

type importKeyPairInput struct {
	KeyName           *string            `query:"KeyName"`
	PublicKeyMaterial []byte             `query:"PublicKeyMaterial"`
	TagSpecifications []TagSpecification `query:"TagSpecification"`
	DryRun            bool               `query:"DryRun"`
}

type importKeyPairOutput struct {
	KeyFingerprint string             `xml:"keyFingerprint"`
	KeyName        string             `xml:"keyName"`
	KeyPairID      string             `xml:"keyPairId"`
	Tags           awsproto.List[Tag] `xml:"tagSet"`
}

func (s *Service) importKeyPair(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in importKeyPairInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if err := validateKeyName(in.KeyName); err != nil {
		return nil, err
	}
	if len(in.PublicKeyMaterial) == 0 {
		return nil, missingParameter("PublicKeyMaterial")
	}
	tags, err := tagsFromSpecs(in.TagSpecifications, "key-pair")
	if err != nil {
		return nil, err
	}
	imp, err := sshkey.Import(in.PublicKeyMaterial)
	if err != nil {
		return nil, clientError("InvalidKey.Format", "Key is not in valid OpenSSH public key format: %v", err)
	}
	if in.DryRun {
		return nil, errDryRun
	}
	kp := keyPair{ID: newID("key"), Name: *in.KeyName, Type: string(imp.Type), Fingerprint: imp.Fingerprint,
		PublicKey: imp.PublicKey + " " + *in.KeyName, Created: s.now().UTC()}
	if err := s.insertKeyPair(ctx, r, kp, tags); err != nil {
		return nil, err
	}
	return importKeyPairOutput{KeyFingerprint: kp.Fingerprint, KeyName: kp.Name, KeyPairID: kp.ID,
		Tags: tagList(nil).set(tags).xml()}, nil
}

type describeKeyPairsInput struct {
	Filters          []Filter `query:"Filter"`
	KeyNames         []string `query:"KeyName"`
	KeyPairIDs       []string `query:"KeyPairId"`
	IncludePublicKey bool     `query:"IncludePublicKey"`
	DryRun           bool     `query:"DryRun"`
}

type keyPairInfo struct {
	KeyPairID      string             `xml:"keyPairId"`
	KeyType        string             `xml:"keyType"`
	Tags           awsproto.List[Tag] `xml:"tagSet"`
	KeyName        string             `xml:"keyName"`
	KeyFingerprint string             `xml:"keyFingerprint"`
	PublicKey      string             `xml:"publicKey,omitempty"`
	CreateTime     string             `xml:"createTime"`
}

type describeKeyPairsOutput struct {
	KeyPairs awsproto.List[keyPairInfo] `xml:"keySet"`
}

var keyPairFilters = map[string]bool{"key-name": true, "key-pair-id": true, "fingerprint": true, "key-type": true, "tag-key": true}

func (s *Service) describeKeyPairs(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in describeKeyPairsInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	err := checkFilters(in.Filters, func(n string) bool {
		return keyPairFilters[n] || len(n) > 4 && n[:4] == "tag:"
	})
	if err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	kvs, err := s.store.List(ctx, s.prefix(r)+"keypair/", "", 0)
	if err != nil {
		return nil, err
	}
	tagKVs, err := s.store.List(ctx, s.prefix(r)+"tags/key-", "", 0)
	if err != nil {
		return nil, err
	}
	tagsByID := make(map[string]tagList, len(tagKVs))
	for _, kv := range tagKVs {
		l, err := loadTags(kv, nil)
		if err != nil {
			return nil, err
		}
		tagsByID[kv.Key[len(s.prefix(r)+"tags/"):]] = l
	}
	wantName, wantID := setOf(in.KeyNames), setOf(in.KeyPairIDs)
	seenName, seenID := map[string]bool{}, map[string]bool{}
	var out describeKeyPairsOutput
	for _, kv := range kvs {
		var kp keyPair
		if err := json.Unmarshal(kv.Value, &kp); err != nil {
			return nil, fmt.Errorf("key pair %s: %w", kv.Key, err)
		}
		if len(wantName) > 0 && !wantName[kp.Name] || len(wantID) > 0 && !wantID[kp.ID] {
			continue
		}
		seenName[kp.Name], seenID[kp.ID] = true, true
		tags := tagsByID[kp.ID]
		ok := matchFilters(in.Filters, func(name string) []string {
			switch name {
			case "key-name":
				return []string{kp.Name}
			case "key-pair-id":
				return []string{kp.ID}
			case "fingerprint":
				return []string{kp.Fingerprint}
			case "key-type":
				return []string{kp.Type}
			}
			return tags.filterValues(name)
		})
		if !ok {
			continue
		}
		info := keyPairInfo{KeyPairID: kp.ID, KeyType: kp.Type, Tags: tags.xml(), KeyName: kp.Name,
			KeyFingerprint: kp.Fingerprint, CreateTime: timestamp(kp.Created)}
		if in.IncludePublicKey {
			info.PublicKey = kp.PublicKey
		}
		out.KeyPairs = append(out.KeyPairs, info)
	}
	// Asking for a name or id that does not exist is an error, as in EC2.
	for _, n := range in.KeyNames {
		if !seenName[n] {
			return nil, notFoundByName(n)
		}
	}
	for _, id := range in.KeyPairIDs {
		if !seenID[id] {
			return nil, clientError("InvalidKeyPair.NotFound", "The key pair ID '%s' does not exist", id)
		}
	}
	sort.Slice(out.KeyPairs, func(i, j int) bool { return out.KeyPairs[i].KeyName < out.KeyPairs[j].KeyName })
	return out, nil
}

// strValue returns the value of an optional string parameter, "" when absent.
func strValue(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func setOf(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

type deleteKeyPairInput struct {
	KeyName   *string `query:"KeyName"`
	KeyPairID *string `query:"KeyPairId"`
	DryRun    bool    `query:"DryRun"`
}

type deleteKeyPairOutput struct {
	Return    bool   `xml:"return"`
	KeyPairID string `xml:"keyPairId,omitempty"`
}

// deleteKeyPair deletes by id or name. Deleting a key pair that does not exist succeeds, as in EC2.
func (s *Service) deleteKeyPair(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in deleteKeyPairInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if (in.KeyName == nil || *in.KeyName == "") && (in.KeyPairID == nil || *in.KeyPairID == "") {
		return nil, missingParameter("KeyName or KeyPairId")
	}
	if in.DryRun {
		return nil, errDryRun
	}
	var out deleteKeyPairOutput
	err := s.store.Update(ctx, func(tx store.Tx) error {
		ref, byName := strValue(in.KeyPairID), false
		if ref == "" {
			ref, byName = strValue(in.KeyName), true
		}
		kp, found, err := s.findKeyPair(tx, r, ref, byName)
		if err != nil || !found {
			return err
		}
		out.KeyPairID = kp.ID
		for _, key := range []string{s.keyNameKey(r, kp.Name), s.keyPairKey(r, kp.ID)} {
			if err := tx.Delete(key); err != nil {
				return err
			}
		}
		return putTags(tx, s.tagKey(r, kp.ID), nil)
	})
	if err != nil {
		return nil, err
	}
	out.Return = true
	return out, nil
}
