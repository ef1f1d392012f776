// Package taskspec defines the task kinds Outpost knows and the specs they
// carry, so that the hub and the CLI can reject a malformed task when it is
// submitted rather than when an agent runs it. It imports no executor: the
// hub validates tasks it never runs.
//
// Specs are decoded strictly (unknown fields are errors), bounded in size and
// validated field by field; errors name the field at fault.
package taskspec
