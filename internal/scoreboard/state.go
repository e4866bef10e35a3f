package scoreboard

// State is what the worker in a slot is doing.
type State uint8

// The states of a slot. Free slots hold no worker.
const (
	Free      State = iota // no worker in this slot
	Starting               // started by the master, not yet attached to the board
	Idle                   // waiting for a connection or a request
	Busy                   // serving a request
	Finishing              // stopped accepting; finishing its work before exiting
)

// String returns the state's name as PHP-FPM's status page spells it
// (a busy worker is "Running").
func (s State) String() string {
	switch s {
	case Free:
		return "Free"
	case Starting:
		return "Starting"
	case Idle:
		return "Idle"
	case Busy:
		return "Running"
	case Finishing:
		return "Finishing"
	}
	return "Unknown"
}
