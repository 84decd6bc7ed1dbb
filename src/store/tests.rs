//! The seam is the whole of what the store needs: a second backend kept
//! in memory (what an object store would be, minus the network) imports,
//! lists, logs, verifies and exports a real bundle, and nothing is written
//! at the store's "path".

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::backend::{BlobStore, Guard, MetaStore, RecordFile};
use super::*;
use crate::policy::TrustPolicy;
use crate::progress::Silent;

#[derive(Default)]
struct Inner {
    created: bool,
    blobs: BTreeMap<Sha256Digest, Vec<u8>>,
    records: BTreeMap<(String, String), BTreeMap<String, Vec<u8>>>,
    ledger: Vec<String>,
    head: Option<Vec<u8>>,
    index: Option<Vec<u8>>,
    id: Option<String>,
}

#[derive(Clone, Default)]
struct Mem(Arc<Mutex<Inner>>);

struct NoGuard;
impl Guard for NoGuard {}

impl BlobStore for Mem {
    fn has(&self, d: &Sha256Digest) -> Result<bool> {
        Ok(self.0.lock().unwrap().blobs.contains_key(d))
    }
    fn put_verified(&self, d: &Sha256Digest, staged: &Path) -> Result<bool> {
        let bytes = fs_err::read(staged)?;
        Ok(self.0.lock().unwrap().blobs.insert(*d, bytes).is_none())
    }
    fn sync(&self) -> Result<()> {
        Ok(())
    }
    fn open(&self, d: &Sha256Digest) -> Result<Box<dyn Read + Send>> {
        let bytes = self.0.lock().unwrap().blobs.get(d).cloned();
        let bytes = bytes.ok_or_else(|| Error::Usage(format!("no blob {d}")))?;
        Ok(Box::new(std::io::Cursor::new(bytes)))
    }
    fn list(&self) -> Result<Vec<Sha256Digest>> {
        Ok(self.0.lock().unwrap().blobs.keys().copied().collect())
    }
    fn locate(&self, d: &Sha256Digest) -> String {
        format!("mem:blobs/{}", d.hex())
    }
}

impl MetaStore for Mem {
    fn check_exists(&self) -> Result<()> {
        if self.0.lock().unwrap().created {
            Ok(())
        } else {
            Err(Error::Usage("mem: no such store".into()))
        }
    }
    fn create(&self) -> Result<()> {
        self.0.lock().unwrap().created = true;
        Ok(())
    }
    fn lock(&self, _wait: bool) -> Result<Option<Box<dyn Guard>>> {
        Ok(Some(Box::new(NoGuard)))
    }
    fn staging(&self) -> Result<tempfile::TempDir> {
        Ok(tempfile::tempdir()?)
    }
    fn clean_staging(&self) -> Result<usize> {
        Ok(0)
    }
    fn record_names(&self) -> Result<Vec<(String, String)>> {
        Ok(self.0.lock().unwrap().records.keys().cloned().collect())
    }
    fn record_file(&self, name: &str, version: &str, file: &str) -> Result<Option<Vec<u8>>> {
        let inner = self.0.lock().unwrap();
        Ok(inner
            .records
            .get(&(name.to_string(), version.to_string()))
            .and_then(|r| r.get(file).cloned()))
    }
    fn record_dir(&self, name: &str, version: &str, dir: &str) -> Result<Vec<String>> {
        let inner = self.0.lock().unwrap();
        let prefix = format!("{dir}/");
        let mut out: Vec<String> = inner
            .records
            .get(&(name.to_string(), version.to_string()))
            .map(|r| {
                r.keys()
                    .filter(|k| k.strip_prefix(&prefix).is_some_and(|f| !f.contains('/')))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        Ok(out)
    }
    fn put_record(
        &self,
        name: &str,
        version: &str,
        files: Vec<(String, RecordFile)>,
    ) -> Result<()> {
        let mut inner = self.0.lock().unwrap();
        let key = (name.to_string(), version.to_string());
        if inner.records.contains_key(&key) {
            return Err(Error::Usage("exists".into()));
        }
        let mut record = BTreeMap::new();
        for (rel, file) in files {
            record.insert(rel, file.into_bytes()?);
        }
        inner.records.insert(key, record);
        Ok(())
    }
    fn remove_record(&self, name: &str, version: &str) -> Result<()> {
        let mut inner = self.0.lock().unwrap();
        inner
            .records
            .remove(&(name.to_string(), version.to_string()));
        Ok(())
    }
    fn locate_record(&self, name: &str, version: &str) -> String {
        format!("mem:bundles/{name}/{version}")
    }
    fn ledger_lines(&self) -> Result<Vec<String>> {
        Ok(self.0.lock().unwrap().ledger.clone())
    }
    fn ledger_append(&self, seq: u64, line: &str) -> Result<()> {
        let mut inner = self.0.lock().unwrap();
        if inner.ledger.len() as u64 + 1 != seq {
            return Err(Error::Usage("entry exists".into()));
        }
        inner.ledger.push(line.to_string());
        Ok(())
    }
    fn ledger_truncate(&self, count: u64) -> Result<()> {
        self.0.lock().unwrap().ledger.truncate(count as usize);
        Ok(())
    }
    fn head(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.0.lock().unwrap().head.clone())
    }
    fn swap_head(&self, expected: Option<&[u8]>, new: &[u8]) -> Result<()> {
        let mut inner = self.0.lock().unwrap();
        if inner.head.as_deref() != expected {
            return Err(Error::Usage("precondition failed".into()));
        }
        inner.head = Some(new.to_vec());
        Ok(())
    }
    fn locate_ledger(&self) -> (String, String) {
        ("mem:ledger".into(), "mem:ledger.head".into())
    }
    fn index(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.0.lock().unwrap().index.clone())
    }
    fn put_index(&self, bytes: &[u8]) -> Result<()> {
        self.0.lock().unwrap().index = Some(bytes.to_vec());
        Ok(())
    }
    fn store_id(&self) -> Result<Option<String>> {
        Ok(self.0.lock().unwrap().id.clone())
    }
    fn put_store_id(&self, id: &str) -> Result<()> {
        let mut inner = self.0.lock().unwrap();
        if inner.id.is_some() {
            return Err(Error::Usage("store id exists".into()));
        }
        inner.id = Some(id.to_string());
        Ok(())
    }
}

#[test]
fn a_second_backend_needs_nothing_but_the_seam() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let key = crate::keys::PrivateKey::generate().unwrap();
    key.write_files(&root.join("builder")).unwrap();
    let model = root.join("src/models/tiny");
    fs_err::create_dir_all(&model).unwrap();
    fs_err::write(model.join("config.json"), br#"{"architectures":["X"]}"#).unwrap();
    fs_err::create_dir_all(root.join("src/docs")).unwrap();
    fs_err::write(root.join("src/docs/a.txt"), b"a\n").unwrap();
    fs_err::write(
        root.join("src/airlock.yaml"),
        "apiVersion: airlock/v1\nkind: Bundle\nmetadata:\n  name: demo\n  version: 1.0.0\nfiles:\n  - path: docs\nmodels:\n  - name: tiny\n    path: models/tiny\n",
    )
    .unwrap();
    fs_err::write(
        root.join("policy.yaml"),
        "apiVersion: airlock/v1\nkind: TrustPolicy\nkeys:\n  - name: builder\n    publicKey: builder.pub\n    roles: [builder]\nrequire:\n  builder: 1\n",
    )
    .unwrap();
    let m = crate::manifest::LoadedManifest::load(&root.join("src/airlock.yaml")).unwrap();
    let packed = crate::pack::pack(
        &m,
        &key,
        &root.join("dist"),
        crate::pack::Format::Tar,
        None,
        &Silent,
    )
    .unwrap();
    let policy = TrustPolicy::load(&root.join("policy.yaml")).unwrap();

    let mem = Mem::default();
    let nowhere = root.join("not-a-directory");
    let store = Store::with_backend(&nowhere, Box::new(mem.clone()), Box::new(mem.clone()));
    assert!(store.list().is_err(), "no store yet");
    let done = store
        .import(
            std::slice::from_ref(&packed.path),
            &policy,
            &ImportOptions::default(),
            &Silent,
        )
        .unwrap();
    assert!(!done.already_present);
    assert!(done.blobs_written > 0);
    let again = store
        .import(
            std::slice::from_ref(&packed.path),
            &policy,
            &ImportOptions::default(),
            &Silent,
        )
        .unwrap();
    assert!(again.already_present);

    let list = store.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].commit.as_ref().unwrap().seq, 1);
    let log = store.log(true).unwrap();
    assert_eq!(log.len(), 1);
    {
        let inner = mem.0.lock().unwrap();
        assert_eq!(inner.blobs.len(), done.blobs_written);
        let index: serde_json::Value =
            serde_json::from_slice(inner.index.as_ref().unwrap()).unwrap();
        // files, model and the two generated SBOMs, all of this bundle.
        let entries = index["manifests"].as_array().unwrap();
        assert_eq!(entries.len(), 4, "{index}");
        assert!(entries
            .iter()
            .all(|e| e["annotations"][BUNDLE_ID] == done.id.as_str()));
    }

    // The index is made from a light reading of each record's description
    // (`IndexView`, layers skipped): it says what the whole description says.
    let d = store.description(&list[0]).unwrap();
    let view: IndexView = store.read_description(&list[0]).unwrap();
    assert_eq!((&view.name, &view.version), (&d.name, &d.version));
    assert_eq!(view.artifacts.len(), d.artifacts.len());
    for (v, a) in view.artifacts.iter().zip(&d.artifacts) {
        assert_eq!(
            (v.kind, &v.name, &v.reference, &v.artifact_type, &v.manifest),
            (a.kind, &a.name, &a.reference, &a.artifact_type, &a.manifest)
        );
        assert!(!a.layers.is_empty(), "what the view skips is there");
    }

    let out = root.join("out");
    let exported = store.export("demo", &out, &Silent).unwrap();
    assert!(!exported.files.is_empty());
    assert_eq!(
        fs_err::read(out.join("models/tiny/config.json")).unwrap(),
        br#"{"architectures":["X"]}"#
    );
    assert_eq!(store.log(true).unwrap().len(), 2);

    // A holdings receipt through the seam: the id kept by the backend,
    // every blob of the bundle listed, the ledger still intact.
    let high = crate::keys::PrivateKey::generate().unwrap();
    high.write_files(&root.join("high")).unwrap();
    let h = store.holdings_receipt(&high).unwrap();
    assert_eq!(
        mem.0.lock().unwrap().id.as_deref(),
        Some(h.store_id.as_str())
    );
    assert_eq!(h.blobs, done.blobs_written);
    assert_eq!(store.holdings_receipt(&high).unwrap().store_id, h.store_id);
    assert_eq!(
        store.log(true).unwrap().len(),
        5,
        "store-id and two receipts"
    );
    fs_err::write(root.join("have.json"), &h.bytes).unwrap();
    fs_err::write(
        root.join("base.yaml"),
        "apiVersion: airlock/v1\nkind: TrustPolicy\nkeys:\n  - name: high\n    publicKey: high.pub\n    roles: [store]\n",
    )
    .unwrap();
    let base = crate::receipt::load_base(
        &root.join("have.json"),
        &TrustPolicy::load(&root.join("base.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(base.store_id.as_deref(), Some(h.store_id.as_str()));
    let held: std::collections::HashSet<_> = mem.0.lock().unwrap().blobs.keys().copied().collect();
    assert_eq!(base.blobs, held);
    assert!(!nowhere.exists(), "nothing was written outside the backend");
}
