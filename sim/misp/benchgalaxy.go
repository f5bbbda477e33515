package misp

import "fmt"

// attributeGalaxyEvery is how often an attribute of the galaxy benchmark event carries an
// ATT&CK technique of its own.
const attributeGalaxyEvery = 5

// ConversionBenchmarkEventWithGalaxies is ConversionBenchmarkEvent with MISP galaxies as
// analysts attach them (the Galaxy layout of MISP's JSON, clusters with their meta): the
// event carries eventClusters (1 to 3) clusters — an ATT&CK technique, a second technique, a
// threat actor — and every fifth attribute one of four other techniques. With context
// exported every indicator yields eventClusters relationships, plus one for every fifth.
func ConversionBenchmarkEventWithGalaxies(n, eventClusters int) []byte {
	return conversionBenchmarkEvent(n, max(1, eventClusters))
}

func benchTechnique(uuid, name, id, tactic string) string {
	return fmt.Sprintf(`{"id":"31","uuid":"c4e851fa-775f-11e7-8163-b774922098cd","name":"Attack Pattern","type":"mitre-attack-pattern","description":"ATT&CK Tactic","version":"9","namespace":"mitre-attack","GalaxyCluster":[{"id":"%s","uuid":"%s","collection_uuid":"dcb864dc-775f-11e7-9fbb-1f41b4996683","type":"mitre-attack-pattern","value":"%s - %s","tag_name":"misp-galaxy:mitre-attack-pattern=\"%s - %s\"","description":"Adversaries may use %s to reach their goal. (Citation: MITRE)","galaxy_id":"31","source":"https://github.com/mitre/cti","authors":["MITRE"],"version":"30","distribution":"3","sharing_group_id":null,"default":true,"locked":false,"extends_uuid":null,"extends_version":null,"published":false,"deleted":false,"meta":{"external_id":["%s"],"kill_chain":["mitre-attack:%s"],"mitre_platforms":["Windows","Linux","macOS"],"refs":["https://attack.mitre.org/techniques/%s"]},"tag_id":"%s","local":false}]}`,
		id[1:5], uuid, name, id, name, id, name, id, tactic, id, id[1:5])
}

var benchTechniques = []string{
	benchTechnique("0259baeb-9f63-4c69-bf10-eb038c390688", "Screen Capture", "T1113", "collection"),
	benchTechnique("b3d682b6-98f2-4fb0-aa3b-b4df007ca70a", "Obfuscated Files or Information", "T1027", "defense-evasion"),
	benchTechnique("7385dfaf-6886-4229-9ecd-6fd678040830", "Command and Scripting Interpreter", "T1059", "execution"),
	benchTechnique("e6919abc-99f9-4c6c-95a5-14761e7b2add", "Ingress Tool Transfer", "T1105", "command-and-control"),
}

var benchEventGalaxies = []string{
	benchTechnique("2e34237d-8574-43f6-aace-ae2915de8597", "Spearphishing Attachment", "T1566", "initial-access"),
	benchTechnique("a62a8db3-f23a-4d8f-afd6-9dbc77e7813b", "Phishing", "T1598", "reconnaissance"),
	`{"id":"12","uuid":"698774c7-8022-42c4-917f-8d6e4f06ada3","name":"Threat Actor","type":"threat-actor","description":"Threat actors are characteristics of malicious actors.","version":"3","namespace":"misp","GalaxyCluster":[{"id":"66","uuid":"7cdd0f3e-6ed8-4b0d-9f4a-0a8b0b8e7d11","type":"threat-actor","value":"Sofacy","tag_name":"misp-galaxy:threat-actor=\"Sofacy\"","description":"The Sofacy Group is a threat group.","galaxy_id":"12","meta":{"synonyms":["APT28","Fancy Bear","Sednit"],"country":["RU"],"cfr-suspected-state-sponsor":"Russian Federation"}}]}`,
}
