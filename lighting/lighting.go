// Package lighting will drive street-light dimming (issue: street-lighting control): astronomical clock,
// programs, overrides and commands tracked end to end. The MQTT contract it speaks with the controllers is
// fixed in contract.go: topics, program, command and acknowledgement payloads.
package lighting

// Topic patterns of the controller contract (DESIGN.md): the service publishes programs and commands,
// controllers acknowledge. ProgramTopic, CommandTopic and AckTopic give one device's topic.
const (
	ProgramTopics = "hv/+/program" // retained, versioned day program (controllers subscribe)
	CommandTopics = "hv/+/cmd"     // immediate command with an id (controllers subscribe)
	AckTopics     = "hv/+/ack"     // {"id":…, "status":"ok"|"rejected"} (the service subscribes)
)
