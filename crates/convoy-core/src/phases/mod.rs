//! The phase machines of each strategy kind: given the phase a step finished and its result,
//! where the step goes next. Pure: the driver in convoyd performs each phase's action.

pub mod rolling_maintenance;
