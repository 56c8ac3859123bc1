// Package lighting will drive street-light dimming (issue: street-lighting control): astronomical clock,
// programs, overrides and commands tracked end to end. The MQTT contract it will speak is fixed here.
package lighting

// Topics of the controller contract (DESIGN.md): the service publishes programs and commands, controllers
// acknowledge commands.
const (
	ProgramTopic = "hv/%s/program" // retained, versioned day program
	CommandTopic = "hv/%s/cmd"     // immediate command with an id
	AckTopic     = "hv/+/ack"      // {"id":…, "status":"ok"|"rejected"}
)
