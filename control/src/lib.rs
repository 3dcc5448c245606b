//! cost-control: budgets and the spend ledger (see issue 7).

pub mod budget;
pub mod clock;
pub mod model;
pub mod money;
pub mod store;
pub mod window;
