package hyperviseur

import "time"

// SiteKind is what a site is.
type SiteKind string

// Site kinds.
const (
	SiteBuilding        SiteKind = "building"
	SiteLightingCabinet SiteKind = "lighting_cabinet"
	SiteWeatherStation  SiteKind = "weather_station"
)

// Site is a place that holds devices: a public building, a lighting cabinet, a weather station.
type Site struct {
	ID            string   `yaml:"id" json:"id"`
	Name          string   `yaml:"name" json:"name"`
	Kind          SiteKind `yaml:"kind" json:"kind"`
	Usage         string   `yaml:"usage,omitempty" json:"usage,omitempty"` // mairie, école, collège, gymnase…
	Commune       string   `yaml:"commune" json:"commune"`                 // INSEE code
	EPCI          string   `yaml:"-" json:"epci"`                          // from the territory, never configured
	Lat           float64  `yaml:"lat,omitempty" json:"lat"`               // default: the commune's centroid
	Lon           float64  `yaml:"lon,omitempty" json:"lon"`
	SurfaceM2     float64  `yaml:"surface_m2,omitempty" json:"surface_m2,omitempty"`
	SubscribedKVA float64  `yaml:"subscribed_kva,omitempty" json:"subscribed_kva,omitempty"`
	Tertiaire     bool     `yaml:"tertiaire,omitempty" json:"tertiaire,omitempty"` // subject to the décret tertiaire
	ReferenceYear int      `yaml:"reference_year,omitempty" json:"reference_year,omitempty"`
}

// DeviceKind is what a device is.
type DeviceKind string

// Device kinds.
const (
	DeviceMeter              DeviceKind = "meter"
	DeviceLightingController DeviceKind = "lighting_controller"
	DeviceWeather            DeviceKind = "weather"
)

// KeyMap maps one payload key (a LoRaWAN codec key, a SenML name) to a canonical metric; Unit names the unit
// the device sends it in, converted like any other unit.
type KeyMap struct {
	Metric Metric `yaml:"metric" json:"metric"`
	Unit   string `yaml:"unit,omitempty" json:"unit,omitempty"`
}

// Device is a meter, a lighting controller or a weather station. Its identity comes from the MQTT topic or
// the LoRaWAN envelope.
type Device struct {
	ID       string            `yaml:"id" json:"id"`
	Site     string            `yaml:"site" json:"site"`
	Kind     DeviceKind        `yaml:"kind" json:"kind"`
	Fluid    Fluid             `yaml:"fluid,omitempty" json:"fluid,omitempty"`
	Units    map[Metric]string `yaml:"units,omitempty" json:"units,omitempty"` // unit hints for unit-less payloads
	Interval time.Duration     `yaml:"interval,omitempty" json:"interval,omitempty"`
	// MaxPowerW bounds a plausible index increase: above MaxPowerW × interval the jump is flagged.
	MaxPowerW float64 `yaml:"max_power_w,omitempty" json:"max_power_w,omitempty"`
	// RegisterMax is the index register's width (e.g. 100000 for a 5-digit kWh register): a decrease near it is
	// a rollover, not a reset. Zero: no rollover.
	RegisterMax float64 `yaml:"register_max,omitempty" json:"register_max,omitempty"`
	// Profile names a LoRaWAN device profile whose key map applies; Keys adds or overrides keys.
	Profile string            `yaml:"profile,omitempty" json:"profile,omitempty"`
	Keys    map[string]KeyMap `yaml:"keys,omitempty" json:"keys,omitempty"`
	// Downlink says how to reach a LoRaWAN device from the service (lighting programs and commands); nil: the
	// device listens on hv/<id>/… itself.
	Downlink *Downlink `yaml:"downlink,omitempty" json:"downlink,omitempty"`
}

// LoRaWAN network servers a downlink can go through.
const (
	NetworkChirpStack = "chirpstack"
	NetworkTTS        = "tts"
)

// Downlink is a LoRaWAN device's route through its network server: ChirpStack v4 (application id; the
// device is its DevEUI) or The Things Stack v3 (application id "app@tenant"; the device is its device_id).
type Downlink struct {
	Network     string `yaml:"network" json:"network"`         // NetworkChirpStack or NetworkTTS
	Application string `yaml:"application" json:"application"` // ChirpStack application id, TTS "app@tenant"
	FPort       int    `yaml:"fport,omitempty" json:"fport,omitempty"`
}

// Commune is one of the 797 communes of the Aisne.
type Commune struct {
	Code       string   `json:"code"` // INSEE
	Name       string   `json:"nom"`
	Population int      `json:"population"`
	EPCI       string   `json:"epci"`
	Lat        float64  `json:"lat"`
	Lon        float64  `json:"lon"`
	Postcodes  []string `json:"codesPostaux,omitempty"`
}

// EPCI is an inter-communal body (établissement public de coopération intercommunale).
type EPCI struct {
	Code     string   `json:"code"` // SIREN
	Name     string   `json:"nom"`
	Type     string   `json:"type"`
	Communes []string `json:"communes"`
}
