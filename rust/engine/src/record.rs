//! Call recording: both directions of a call into a stereo WAV (left what
//! was received, right what was sent, at the application's rate), written
//! by one thread per engine so that file I/O never delays a worker's tick.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

/// An open WAV file being recorded into.
pub struct WavFile {
    writer: hound::WavWriter<BufWriter<File>>,
}

impl WavFile {
    /// Creates (or truncates) `path` as a 16-bit stereo WAV at `sample_rate`.
    pub fn create(path: &Path, sample_rate: u32) -> io::Result<Self> {
        let spec = hound::WavSpec { channels: 2, sample_rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
        let writer = hound::WavWriter::create(path, spec).map_err(wav_error)?;
        Ok(WavFile { writer })
    }

    fn write(&mut self, interleaved: &[i16]) -> io::Result<()> {
        let mut samples = self.writer.get_i16_writer(interleaved.len() as u32);
        for &sample in interleaved {
            samples.write_sample(sample);
        }
        samples.flush().map_err(wav_error)
    }

    fn finish(self) -> io::Result<()> {
        self.writer.finalize().map_err(wav_error)
    }
}

fn wav_error(e: hound::Error) -> io::Error {
    match e {
        hound::Error::IoError(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

/// A request to the recording thread.
pub(crate) enum Message {
    /// Start recording stream `id` into `file`; `done` is signalled once the
    /// file is complete (or dropped, if the thread ends first).
    Open { id: u64, file: WavFile, done: SyncSender<()> },
    /// Interleaved left/right samples for stream `id`.
    Samples { id: u64, interleaved: Vec<i16> },
    /// Stream `id` ended: complete its file.
    Close { id: u64 },
}

/// The recording thread of an engine, started on the first recording.
pub(crate) struct Recorder {
    sender: Sender<Message>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    pub(crate) fn spawn() -> io::Result<Self> {
        let (sender, receiver) = mpsc::channel();
        let thread = std::thread::Builder::new().name("rtpcore-recorder".into()).spawn(move || run(receiver))?;
        Ok(Recorder { sender, thread: Some(thread) })
    }

    pub(crate) fn sender(&self) -> Sender<Message> {
        self.sender.clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // Workers hold clones of the sender until their calls close; the
        // engine drops its recorder only after joining them, so the thread
        // sees the channel close and completes every remaining file.
        let (closed, _) = mpsc::channel();
        self.sender = closed;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Recording {
    file: WavFile,
    done: SyncSender<()>,
}

fn run(messages: Receiver<Message>) {
    let mut recordings: HashMap<u64, Recording> = HashMap::new();
    for message in messages {
        match message {
            Message::Open { id, file, done } => {
                recordings.insert(id, Recording { file, done });
            }
            Message::Samples { id, interleaved } => {
                let failed = recordings.get_mut(&id).is_some_and(|r| r.file.write(&interleaved).is_err());
                if failed {
                    // A full disk or a vanished directory ends this
                    // recording (keeping what was written), not the call.
                    if let Some(recording) = recordings.remove(&id) {
                        finish(recording);
                    }
                }
            }
            Message::Close { id } => {
                if let Some(recording) = recordings.remove(&id) {
                    finish(recording);
                }
            }
        }
    }
    for (_, recording) in recordings.drain() {
        finish(recording);
    }
}

fn finish(recording: Recording) {
    // Nothing to report a failure to: the file keeps what reached the disk.
    let _ = recording.file.finish();
    let _ = recording.done.send(());
}

/// Interleaves one tick of `left` and `right` into `out` as stereo
/// samples; the shorter side is padded with silence.
pub(crate) fn interleave(left: &[i16], right: &[i16], out: &mut Vec<i16>) {
    let len = left.len().max(right.len());
    out.reserve(len * 2);
    for i in 0..len {
        out.push(left.get(i).copied().unwrap_or(0));
        out.push(right.get(i).copied().unwrap_or(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_interleaved_stereo_and_completes_on_close() {
        let dir = std::env::temp_dir().join(format!("rtpcore-record-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("call.wav");
        let recorder = Recorder::spawn().unwrap();
        let (done, finished) = mpsc::sync_channel(1);
        let sender = recorder.sender();
        sender.send(Message::Open { id: 7, file: WavFile::create(&path, 16000).unwrap(), done }).unwrap();
        let mut interleaved = Vec::new();
        interleave(&[1, 2, 3], &[-1, -2], &mut interleaved);
        assert_eq!(interleaved, [1, -1, 2, -2, 3, 0]);
        sender.send(Message::Samples { id: 7, interleaved }).unwrap();
        sender.send(Message::Samples { id: 99, interleaved: vec![5, 5] }).unwrap();
        sender.send(Message::Close { id: 7 }).unwrap();
        finished.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        let mut reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(reader.spec().channels, 2);
        assert_eq!(reader.spec().sample_rate, 16000);
        let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(samples, [1, -1, 2, -2, 3, 0]);
        drop(sender);
        drop(recorder);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unwritable_path_fails_at_creation() {
        assert!(WavFile::create(Path::new("/nonexistent-dir/x.wav"), 8000).is_err());
    }
}
