// Package lighting drives street-light dimming: the plan (programs, calendars, groups, decrees; plan.go,
// load.go, calendar.go) resolved into nightly timelines at each cabinet (resolve.go, with lighting/sun), the
// service that pushes them and tracks overrides as commands end to end with an audit log (service.go, db.go,
// mqtt.go), and the savings, compliance and lamp-life reports (report.go, life.go). The contract with the
// controllers is contract.go (MQTT) and lorawan.go (ChirpStack and The Things Stack downlinks).
package lighting

// Topic patterns of the controller contract (DESIGN.md): the service publishes programs and commands,
// controllers acknowledge. ProgramTopic, CommandTopic and AckTopic give one device's topic.
const (
	ProgramTopics = "hv/+/program" // retained, versioned day program (controllers subscribe)
	CommandTopics = "hv/+/cmd"     // immediate command with an id (controllers subscribe)
	AckTopics     = "hv/+/ack"     // {"id":…, "status":"ok"|"rejected"} (the service subscribes)
)
