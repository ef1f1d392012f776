// Package logfmt reads the lines slog's text handler writes, as the
// benchmarks do with the agent's log.
package logfmt

import "strings"

// Parse splits a line of key=value pairs, values possibly quoted, into a
// map; a key seen twice keeps its first value. Quoted values keep Go's
// escapes unresolved but for \"; the benchmarks read only ids, messages,
// release names, revisions, times and durations.
func Parse(line string) map[string]string {
	kv := map[string]string{}
	for line != "" {
		line = strings.TrimLeft(line, " ")
		key, rest, ok := strings.Cut(line, "=")
		if !ok {
			break
		}
		var val string
		if strings.HasPrefix(rest, `"`) {
			end := 1
			for end < len(rest) && (rest[end] != '"' || rest[end-1] == '\\') {
				end++
			}
			val = strings.ReplaceAll(rest[1:min(end, len(rest))], `\"`, `"`)
			rest = rest[min(end+1, len(rest)):]
		} else {
			val, rest, _ = strings.Cut(rest, " ")
		}
		if _, seen := kv[key]; !seen {
			kv[key] = val
		}
		line = rest
	}
	return kv
}
