// Package agentcmd holds the outpost-agent command line: flags and
// environment variables wired into agent.Options, with the executors this
// build ships.
package agentcmd
