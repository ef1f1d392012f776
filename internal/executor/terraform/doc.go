// Package terraform runs terraform tasks: an OpenTofu (or Terraform) module
// planned, applied or destroyed through the CLI, driven by
// github.com/hashicorp/terraform-exec.
//
// Each run extracts the module into a fresh private directory that is
// removed afterwards, points the module at the state backend the agent is
// configured with (the kubernetes backend, one state per workspace), plans
// to a plan file, summarizes that plan, applies exactly it, and reports the
// outputs with the sensitive ones redacted. Sensitive input variables are
// resolved from vault references and reach the CLI through an in-memory
// file, never through its command line, its environment or the disk.
package terraform
