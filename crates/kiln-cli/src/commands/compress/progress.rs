//! Progress bars of the compression commands: [`kiln_compress::Progress`] drawn with indicatif
//! on stderr, one bar per stage.

use std::io::IsTerminal;

use indicatif::ProgressBar;
use kiln_compress::distill::StepRecord;
use kiln_compress::{Progress, Stage};

use super::report::describe;
use crate::common::progress_bar;

/// A bar for the running stage; distillation's evaluations as lines above it (or on stderr
/// when the bar is hidden, e.g. when stderr is a log file).
#[derive(Default)]
pub struct Bars {
    bar: Option<ProgressBar>,
}

impl Progress for Bars {
    fn start(&mut self, stage: Stage, total: usize, unit: &'static str) {
        let what = match stage {
            Stage::Distillation => unit.to_string(),
            _ => format!("{unit} ({})", stage.name()),
        };
        let template = format!("{{bar:30}} {{pos}}/{{len}} {what}, eta {{eta}} {{msg}}");
        self.bar = Some(progress_bar(total as u64, &template));
    }

    fn advance(&mut self, done: usize) {
        if let Some(bar) = &self.bar {
            bar.inc(done as u64);
        }
    }

    fn step(&mut self, record: &StepRecord) {
        if let (Some(bar), true) = (&self.bar, record.step > 0) {
            bar.inc(1);
            if let Some(loss) = record.loss {
                bar.set_message(format!("loss {loss:.5}"));
            }
        }
        if let Some(eval) = &record.eval {
            let line = format!("step {}: {}", record.step, describe(eval));
            // A hidden bar (stderr is not a terminal, e.g. a log file) would drop the line.
            match &self.bar {
                Some(bar) if std::io::stderr().is_terminal() => bar.println(line),
                _ => eprintln!("{line}"),
            }
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
