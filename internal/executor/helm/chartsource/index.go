package chartsource

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	chart "helm.sh/helm/v4/pkg/chart/v2"
	repo "helm.sh/helm/v4/pkg/repo/v1"
	"sigs.k8s.io/yaml"
)

// parseIndex decodes a repository's index.yaml from memory as Helm's
// repo.LoadIndexFile does from a file (which this package cannot use: it
// never writes to disk): JSON or strict YAML, an apiVersion required,
// empty and invalid entries dropped, versions sorted newest first.
func parseIndex(data []byte) (*repo.IndexFile, error) {
	if len(data) == 0 {
		return nil, repo.ErrEmptyIndexYaml
	}
	idx := &repo.IndexFile{}
	var err error
	if json.Valid(data) {
		err = json.Unmarshal(data, idx)
	} else {
		err = yaml.UnmarshalStrict(data, idx)
	}
	if err != nil {
		return nil, err
	}
	if idx.APIVersion == "" {
		return nil, repo.ErrNoAPIVersion
	}
	for name, versions := range idx.Entries {
		kept := versions[:0]
		for _, v := range versions {
			if v == nil {
				continue
			}
			if v.Metadata == nil {
				v.Metadata = &chart.Metadata{}
			}
			if v.APIVersion == "" {
				v.APIVersion = chart.APIVersionV1
			}
			if err := v.Validate(); skippableValidation(err) != nil {
				continue
			}
			kept = append(kept, v)
		}
		idx.Entries[name] = kept
	}
	idx.SortEntries()
	return idx, nil
}

// skippableValidation returns nil for the validation errors Helm ignores
// when loading an index: charts may add checks that do not matter to an
// index, and some repositories strip dependency aliases (helm/helm#12748).
func skippableValidation(err error) error {
	var verr chart.ValidationError
	if errors.As(err, &verr) && strings.HasPrefix(verr.Error(), "validation: more than one dependency with name or alias") {
		return nil
	}
	return err
}

// indexError explains an index that does not decode.
func indexError(display string, err error) error {
	return fmt.Errorf("repository %s: index.yaml: %w: %w", display, ErrBadRepository, err)
}
