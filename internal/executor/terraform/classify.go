package terraform

import (
	"bufio"
	"strings"
)

// configSummaries are summaries of the CLI's error diagnostics that a
// module or its inputs cause: no retry can fix them.
var configSummaries = map[string]bool{
	"Argument or block definition required":  true,
	"Argument not expected here":             true,
	"Attribute redefined":                    true,
	"Duplicate output definition":            true,
	"Duplicate resource configuration":       true,
	"Duplicate variable declaration":         true,
	"Error in function call":                 true,
	"Incorrect attribute value type":         true,
	"Invalid attribute name":                 true,
	"Invalid block definition":               true,
	"Invalid character":                      true,
	"Invalid default value for variable":     true,
	"Invalid expression":                     true,
	"Invalid function argument":              true,
	"Invalid multi-line string":              true,
	"Invalid reference":                      true,
	"Invalid resource type":                  true,
	"Invalid value for input variable":       true,
	"Invalid value for variable":             true,
	"Missing item separator":                 true,
	"Missing newline after argument":         true,
	"Missing required argument":              true,
	"No configuration files":                 true,
	"No value for required variable":         true,
	"Reference to undeclared input variable": true,
	"Reference to undeclared local value":    true,
	"Reference to undeclared module":         true,
	"Reference to undeclared resource":       true,
	"Unclosed configuration block":           true,
	"Unsupported argument":                   true,
	"Unsupported attribute":                  true,
	"Unsupported block type":                 true,
	"Variables not allowed":                  true,
}

// transientSummaries are summaries of failures a later attempt may not
// meet: a lock, a backend or registry out of reach.
var transientSummaries = []string{
	stateLockSummary,
	"Error loading state",
	"Failed to get existing workspaces",
	"Failed to save state",
	"Failed to persist state",
	"Failed to query available provider packages",
	"Failed to install provider",
	"Error releasing the state lock",
}

// diagnosticSummaries returns the summaries of the CLI's error diagnostics,
// the text after "Error: " at the start of a line (the CLI runs with
// -no-color, so without the box drawing).
func diagnosticSummaries(msg string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(msg))
	sc.Buffer(make([]byte, 0, 4096), maxErrorBytes*2)
	for sc.Scan() {
		if s, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Error: "); ok {
			out = append(out, strings.TrimSpace(s))
		}
	}
	return out
}

// isConfigError reports whether the CLI failed because of the module or
// its inputs: some diagnostic is a configuration error and none is a
// transient failure.
func isConfigError(msg string) bool {
	config := false
	for _, s := range diagnosticSummaries(msg) {
		for _, t := range transientSummaries {
			if strings.HasPrefix(s, t) {
				return false
			}
		}
		if configSummaries[s] {
			config = true
		}
	}
	return config
}
