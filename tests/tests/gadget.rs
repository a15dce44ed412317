//! The USB gadget setup script (`rootfs/etc/init.d/S03usbdev`) run against a scratch
//! directory laid out like the device's `/`: every file it writes, and its report
//! descriptors against the report encoders in `protocol/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use nanokvm_e2e::proto::hid::descriptor::{self, Direction, ReportLayout};
use nanokvm_e2e::proto::hid::report::{ABSOLUTE_REPORT_LEN, KEYBOARD_REPORT_LEN, MOUSE_REPORT_LEN};
use nanokvm_e2e::{workspace_dir, TempDir};

const GADGET: &str = "sys/kernel/config/usb_gadget/g0";
const WAKEUP: &str = "sys/bus/platform/drivers/dwc2/4340000.usb/power/wakeup";

/// A scratch root with what the kernel provides: configfs, the dwc2 controller, a UDC.
fn scratch_root(tag: &str) -> TempDir {
    let root = TempDir::new(tag);
    for dir in [
        "sys/kernel/config/usb_gadget",
        "sys/class/udc/4340000.usb",
        "proc/cviusb",
    ] {
        std::fs::create_dir_all(root.path().join(dir)).expect("mkdir");
    }
    let wakeup = root.path().join(WAKEUP);
    std::fs::create_dir_all(wakeup.parent().expect("parent")).expect("mkdir");
    std::fs::write(&wakeup, "enabled\n").expect("write wakeup");
    std::fs::write(root.path().join("proc/cviusb/otg_role"), "host\n").expect("write otg_role");
    root
}

fn run_script(root: &Path, arg: &str) {
    let script = workspace_dir().join("rootfs/etc/init.d/S03usbdev");
    let out = Command::new("sh")
        .arg(&script)
        .arg(arg)
        .env("NANOKVM_ROOT", root)
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "S03usbdev {arg} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every regular file under `dir`, by path relative to it.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("metadata");
            if meta.is_dir() {
                walk(base, &path, out);
            } else if meta.is_file() {
                let rel = path
                    .strip_prefix(base)
                    .expect("prefix")
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(&path).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn the_gadget_script_writes_every_file_as_specified() {
    let root = scratch_root("gadget");
    run_script(root.path(), "start");
    let all = files(root.path());
    let text = |k: &str| -> String {
        String::from_utf8_lossy(
            all.get(k)
                .unwrap_or_else(|| panic!("{k} not written; files: {:?}", all.keys())),
        )
        .into_owned()
    };
    let g = |k: &str| format!("{GADGET}/{k}");
    let mut expected: BTreeMap<String, String> = [
        ("idVendor", "0x3346\n"),
        ("idProduct", "0x1009\n"),
        ("bcdDevice", "0x0510\n"),
        ("bcdUSB", "0x0200\n"),
        ("bDeviceClass", "0xEF\n"),
        ("bDeviceSubClass", "0x02\n"),
        ("bDeviceProtocol", "0x01\n"),
        ("strings/0x409/serialnumber", "0123456789ABCDEF\n"),
        ("strings/0x409/manufacturer", "sipeed\n"),
        ("strings/0x409/product", "NanoKVM\n"),
        ("configs/c.1/strings/0x409/configuration", "nanokvmd HID\n"),
        ("configs/c.1/bmAttributes", "0x80\n"),
        ("configs/c.1/MaxPower", "120\n"),
        ("functions/hid.GS0/protocol", "1\n"),
        ("functions/hid.GS0/subclass", "0\n"),
        ("functions/hid.GS0/report_length", "8\n"),
        ("functions/hid.GS1/protocol", "2\n"),
        ("functions/hid.GS1/subclass", "0\n"),
        ("functions/hid.GS1/report_length", "4\n"),
        ("functions/hid.GS2/protocol", "2\n"),
        ("functions/hid.GS2/subclass", "0\n"),
        ("functions/hid.GS2/report_length", "6\n"),
        ("UDC", "4340000.usb\n"),
    ]
    .into_iter()
    .map(|(k, v)| (g(k), v.to_string()))
    .collect();
    expected.insert(WAKEUP.into(), "disabled\n".into());
    expected.insert("proc/cviusb/otg_role".into(), "device\n".into());
    for (k, v) in &expected {
        assert_eq!(&text(k), v, "{k}");
    }
    let descriptors = [
        ("hid.GS0", descriptor::KEYBOARD),
        ("hid.GS1", descriptor::MOUSE),
        ("hid.GS2", descriptor::ABSOLUTE),
    ];
    for (f, bytes) in descriptors {
        let k = g(&format!("functions/{f}/report_desc"));
        assert_eq!(all.get(&k).map(Vec::as_slice), Some(bytes), "{k}");
    }
    // Nothing else: in particular no wakeup_on_write.
    let unexpected: Vec<&String> = all
        .keys()
        .filter(|k| !expected.contains_key(*k) && !k.ends_with("/report_desc"))
        .collect();
    assert!(unexpected.is_empty(), "unexpected files: {unexpected:?}");
    assert!(!all.keys().any(|k| k.contains("wakeup_on_write")));
    // Each function is linked into the configuration.
    for (f, _) in descriptors {
        let link = root.path().join(g(&format!("configs/c.1/{f}")));
        let target =
            std::fs::read_link(&link).unwrap_or_else(|e| panic!("{}: {e}", link.display()));
        assert_eq!(target, root.path().join(g(&format!("functions/{f}"))));
    }

    run_script(root.path(), "stop");
    let udc = std::fs::read_to_string(root.path().join(g("UDC"))).expect("UDC");
    assert_eq!(udc, "\n", "unbound");
    assert!(std::fs::symlink_metadata(root.path().join(g("configs/c.1/hid.GS0"))).is_err());
}

#[test]
fn the_bios_option_declares_the_boot_keyboard_and_ids_can_be_overridden() {
    let root = scratch_root("gadget-bios");
    std::fs::create_dir_all(root.path().join("boot")).expect("mkdir boot");
    std::fs::write(root.path().join("boot/BIOS"), "").expect("BIOS");
    std::fs::write(root.path().join("boot/usb.vid"), "0x1d6b").expect("vid");
    run_script(root.path(), "start");
    let read = |k: &str| std::fs::read_to_string(root.path().join(GADGET).join(k)).expect(k);
    assert_eq!(read("functions/hid.GS0/subclass"), "1\n");
    assert_eq!(read("functions/hid.GS1/subclass"), "0\n");
    assert_eq!(read("idVendor"), "0x1d6b\n");
}

#[test]
fn the_written_descriptors_declare_the_reports_protocol_encodes() {
    let root = scratch_root("gadget-desc");
    run_script(root.path(), "start");
    let desc = |f: &str| -> ReportLayout {
        let p: PathBuf = root
            .path()
            .join(GADGET)
            .join("functions")
            .join(f)
            .join("report_desc");
        ReportLayout::parse(&std::fs::read(&p).expect("report_desc"))
            .unwrap_or_else(|e| panic!("{f}: {e}"))
    };
    let keyboard = desc("hid.GS0");
    assert_eq!(keyboard.len(Direction::Input), KEYBOARD_REPORT_LEN);
    assert_eq!(keyboard.len(Direction::Output), 1, "the LED byte");
    let keys = keyboard
        .array(descriptor::USAGE_PAGE_KEYBOARD)
        .expect("key array");
    assert_eq!((keys.bit_offset, keys.count, keys.size), (16, 6, 8));
    assert_eq!(keys.logical_max, 0xE7);
    let mouse = desc("hid.GS1");
    assert_eq!(mouse.len(Direction::Input), MOUSE_REPORT_LEN);
    let (x, _) = mouse
        .find(descriptor::USAGE_PAGE_DESKTOP, descriptor::USAGE_X)
        .expect("X");
    assert!(x.relative && x.size == 8 && x.logical_min == -127);
    let absolute = desc("hid.GS2");
    assert_eq!(absolute.len(Direction::Input), ABSOLUTE_REPORT_LEN);
    let (x, i) = absolute
        .find(descriptor::USAGE_PAGE_DESKTOP, descriptor::USAGE_X)
        .expect("X");
    assert_eq!(
        (x.bit_offset + i * x.size, x.size, x.logical_max),
        (8, 16, 32767)
    );
    assert!(!x.relative);
    // The field-by-field checks of each encoder against these descriptors are unit tests in
    // protocol/src/hid/report.rs; here the bytes are the script's, so both agree.
    assert_eq!(
        desc("hid.GS2"),
        ReportLayout::parse(descriptor::ABSOLUTE).expect("parse")
    );
}
