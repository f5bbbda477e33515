package misp

import (
	"encoding/json"
	"time"
)

// Event is one MISP event with its attributes, objects, tags and galaxies, in the layout of
// MISP's JSONConverter (the same over REST, ZeroMQ misp_json and workflow webhooks).
//
// Times are UTC; a timestamp MISP did not send is the zero time.
type Event struct {
	ID               string
	UUID             string
	Info             string
	Date             string // YYYY-MM-DD as MISP sends it
	OrgID            string
	OrgcID           string
	ThreatLevelID    string
	Analysis         string
	Distribution     string
	SharingGroupID   string
	Published        bool
	Timestamp        time.Time // last modification
	PublishTimestamp time.Time
	ExtendsUUID      string
	Org              Org
	Orgc             Org
	Tags             []Tag
	Galaxies         []Galaxy
	Attributes       []Attribute // attributes outside any object
	Objects          []Object
}

// Attribute is one MISP attribute, either directly in an event or inside an object.
type Attribute struct {
	ID             string
	UUID           string
	EventID        string
	ObjectID       string
	ObjectRelation string
	Type           string
	Category       string
	Value          string
	Comment        string
	// Data is the base64 content of attachment and malware-sample attributes, when MISP
	// included it.
	Data               string
	Distribution       string
	SharingGroupID     string
	ToIDS              bool
	Deleted            bool
	DisableCorrelation bool
	Timestamp          time.Time
	FirstSeen          *time.Time
	LastSeen           *time.Time
	Tags               []Tag
	Galaxies           []Galaxy
	// DecayScores are the attribute's scores under each enabled decaying model that covers
	// its type, present only when the search asked for includeDecayScore (nil otherwise, and
	// for a type no enabled model covers).
	DecayScores []DecayScore
}

// DecayScore is one decaying model's verdict on an attribute, as MISP attaches it to each
// attribute of an events search with includeDecayScore (decay_score entries).
type DecayScore struct {
	// Score is the current score, 0-100 (base score decayed by the time since the last
	// sighting, last_seen or the attribute's timestamp).
	Score float64
	// BaseScore is the score before decay, from the attribute's taxonomy tags or the model's
	// default base score.
	BaseScore float64
	// Decayed is MISP's verdict: the score is below the model's threshold.
	Decayed   bool
	ModelID   string
	ModelName string
}

// Object is a MISP object: a named group of attributes built from a template.
type Object struct {
	ID              string
	UUID            string
	Name            string
	MetaCategory    string
	Description     string
	Comment         string
	TemplateUUID    string
	TemplateVersion string
	Distribution    string
	Deleted         bool
	Timestamp       time.Time
	FirstSeen       *time.Time
	LastSeen        *time.Time
	Attributes      []Attribute
}

// Tag is a tag attached to an event or an attribute. Galaxy clusters attached to an element
// also appear as tags named misp-galaxy:<type>="<value>".
type Tag struct {
	ID         string
	Name       string
	Colour     string
	Exportable bool
	// Local tags are never synchronised to other MISP instances.
	Local bool
	// Inherited is set on tags of an attribute's webhook _allTags that come from the event.
	Inherited bool
	IsGalaxy  bool
}

// Org is a MISP organisation (Org is the owner of the local copy, Orgc the creator).
type Org struct {
	ID    string
	UUID  string
	Name  string
	Local bool
}

// Galaxy is a MISP galaxy with the clusters of it attached to an event or attribute.
type Galaxy struct {
	ID          string
	UUID        string
	Name        string
	Type        string
	Namespace   string
	Description string
	Clusters    []GalaxyCluster
}

// GalaxyCluster is one cluster (for example one threat actor) of a galaxy.
type GalaxyCluster struct {
	ID          string
	UUID        string
	Type        string
	Value       string
	TagName     string
	Description string
	// Meta is the cluster's free-form meta object, undecoded.
	Meta json.RawMessage
	// Relations are the relations MISP attaches to the cluster: its own
	// (GalaxyClusterRelation, Source is the cluster) and those of other clusters that reference
	// it (TargetingClusterRelation, Target is the cluster), in that order.
	Relations []ClusterRelation
}

// ClusterRelation is one relation between two galaxy clusters ("uses", "attributed-to",
// "similar", ...), named by the clusters' uuids. MISP calls its type
// referenced_galaxy_cluster_type.
type ClusterRelation struct {
	Source string
	Type   string
	Target string
}

// AllAttributes calls fn for every attribute of the event: first the attributes outside
// objects, then each object's attributes (obj is nil for the former). It stops when fn
// returns false.
func (e *Event) AllAttributes(fn func(obj *Object, attr *Attribute) bool) {
	for i := range e.Attributes {
		if !fn(nil, &e.Attributes[i]) {
			return
		}
	}
	for i := range e.Objects {
		o := &e.Objects[i]
		for j := range o.Attributes {
			if !fn(o, &o.Attributes[j]) {
				return
			}
		}
	}
}

// AttributeCount returns the number of attributes in the event, object attributes included.
func (e *Event) AttributeCount() int {
	n := len(e.Attributes)
	for i := range e.Objects {
		n += len(e.Objects[i].Attributes)
	}
	return n
}
