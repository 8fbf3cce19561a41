//! (temporary stub; the real model is being written)
use crate::events::TraceEvent;
use crate::records::{Record, Summary};

#[derive(Default)]
pub struct Model {
    lost: u64,
}

impl Model {
    pub fn new() -> Model {
        Model::default()
    }
    pub fn apply(&mut self, ev: &TraceEvent) -> Vec<Record> {
        eprintln!("{ev:?}");
        vec![]
    }
    pub fn set_lost_events(&mut self, n: u64) {
        self.lost = n;
    }
    pub fn finish(&mut self) -> Vec<Record> {
        vec![Record::Summary(self.summary())]
    }
    pub fn summary(&self) -> Summary {
        Summary {
            lost_events: self.lost,
            ..Default::default()
        }
    }
}
