import Foundation
import LockscopeCore
import LockscopeTestSupport
import XCTest
@testable import LockscopeCompare

/// `lockscope check --junit` output validated by a real XML Schema validator (PyPI's xmlschema) against
/// a schema written here from the rules of junit-10.xsd, the schema Jenkins' xunit plugin uses: which
/// attributes `<testsuites>`, `<testsuite>` and `<testcase>` may carry (no `skipped` on `<testsuites>`),
/// the order of a test case's children, `time` and `timestamp`. Skipped when python3 or xmlschema is
/// missing, unless LOCKSCOPE_REQUIRE_TOOLS=1 (CI), where that fails.
final class JUnitSchemaTests: XCTestCase {
    /// junit-10.xsd's rules. Counts and times are strings in that schema; `timestamp` is narrowed here to
    /// the Ant form (junit-4.xsd's pattern) and `time` to a decimal, which is what lockscope promises.
    static let schema = """
        <?xml version="1.0" encoding="UTF-8"?>
        <xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" elementFormDefault="qualified">
          <xs:simpleType name="seconds"><xs:restriction base="xs:decimal"><xs:minInclusive value="0"/></xs:restriction></xs:simpleType>
          <xs:simpleType name="antTimestamp">
            <xs:restriction base="xs:string"><xs:pattern value="[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"/></xs:restriction>
          </xs:simpleType>
          <xs:complexType name="problem" mixed="true">
            <xs:attribute name="type" type="xs:string"/>
            <xs:attribute name="message" type="xs:string"/>
          </xs:complexType>
          <xs:element name="failure" type="problem"/>
          <xs:element name="error" type="problem"/>
          <xs:element name="skipped">
            <xs:complexType mixed="true"><xs:attribute name="message" type="xs:string"/></xs:complexType>
          </xs:element>
          <xs:element name="system-out" type="xs:string"/>
          <xs:element name="system-err" type="xs:string"/>
          <xs:element name="properties">
            <xs:complexType><xs:sequence>
              <xs:element name="property" maxOccurs="unbounded"><xs:complexType>
                <xs:attribute name="name" type="xs:string" use="required"/>
                <xs:attribute name="value" type="xs:string" use="required"/>
              </xs:complexType></xs:element>
            </xs:sequence></xs:complexType>
          </xs:element>
          <xs:element name="testcase">
            <xs:complexType>
              <xs:sequence>
                <xs:element ref="skipped" minOccurs="0"/>
                <xs:element ref="error" minOccurs="0" maxOccurs="unbounded"/>
                <xs:element ref="failure" minOccurs="0" maxOccurs="unbounded"/>
                <xs:element ref="system-out" minOccurs="0" maxOccurs="unbounded"/>
                <xs:element ref="system-err" minOccurs="0" maxOccurs="unbounded"/>
              </xs:sequence>
              <xs:attribute name="name" type="xs:string" use="required"/>
              <xs:attribute name="assertions" type="xs:string"/>
              <xs:attribute name="time" type="seconds"/>
              <xs:attribute name="classname" type="xs:string"/>
              <xs:attribute name="status" type="xs:string"/>
            </xs:complexType>
          </xs:element>
          <xs:element name="testsuite">
            <xs:complexType>
              <xs:sequence>
                <xs:element ref="properties" minOccurs="0"/>
                <xs:element ref="testcase" minOccurs="0" maxOccurs="unbounded"/>
                <xs:element ref="system-out" minOccurs="0"/>
                <xs:element ref="system-err" minOccurs="0"/>
              </xs:sequence>
              <xs:attribute name="name" type="xs:string" use="required"/>
              <xs:attribute name="tests" type="xs:nonNegativeInteger" use="required"/>
              <xs:attribute name="failures" type="xs:nonNegativeInteger"/>
              <xs:attribute name="errors" type="xs:nonNegativeInteger"/>
              <xs:attribute name="time" type="seconds"/>
              <xs:attribute name="disabled" type="xs:nonNegativeInteger"/>
              <xs:attribute name="skipped" type="xs:nonNegativeInteger"/>
              <xs:attribute name="timestamp" type="antTimestamp"/>
              <xs:attribute name="hostname" type="xs:string"/>
              <xs:attribute name="id" type="xs:string"/>
              <xs:attribute name="package" type="xs:string"/>
            </xs:complexType>
          </xs:element>
          <xs:element name="testsuites">
            <xs:complexType>
              <xs:sequence><xs:element ref="testsuite" minOccurs="0" maxOccurs="unbounded"/></xs:sequence>
              <xs:attribute name="name" type="xs:string"/>
              <xs:attribute name="time" type="seconds"/>
              <xs:attribute name="tests" type="xs:nonNegativeInteger"/>
              <xs:attribute name="failures" type="xs:nonNegativeInteger"/>
              <xs:attribute name="disabled" type="xs:nonNegativeInteger"/>
              <xs:attribute name="errors" type="xs:nonNegativeInteger"/>
            </xs:complexType>
          </xs:element>
        </xs:schema>
        """

    /// Validates each file against the schema with xmlschema; one line per file, `ok` or the reason.
    static let validator = """
        import sys, xmlschema
        schema = xmlschema.XMLSchema10(sys.argv[1])
        for path in sys.argv[2:]:
            try:
                schema.validate(path)
                print("ok")
            except xmlschema.XMLSchemaValidationError as error:
                print("invalid: " + str(error.reason).replace("\\n", " "))
        """

    private var directory = ""

    override func setUpWithError() throws {
        guard ExternalTool.pythonHas("xmlschema") else {
            if ExternalTool.required {
                throw ExternalTool.Failure("python3 with xmlschema is missing: pip install xmlschema (.ci/run does)")
            }
            throw XCTSkip("python3 with xmlschema is missing (pip install xmlschema)")
        }
        directory = try temporaryDirectory(self)
        try Data(Self.schema.utf8).write(to: URL(fileURLWithPath: "\(directory)/junit-10-rules.xsd"))
        try Data(Self.validator.utf8).write(to: URL(fileURLWithPath: "\(directory)/validate.py"))
    }

    /// xmlschema's verdict on each file.
    private func validate(_ paths: [String]) throws -> [String] {
        let output = try ExternalTool.check("python3", ["\(directory)/validate.py", "\(directory)/junit-10-rules.xsd"] + paths,
                                            install: "apt-get install python3")
        return output.split(separator: "\n").map(String.init)
    }

    func testReportsFollowTheSchema() throws {
        let regressed = CheckRequest(currentPath: fixture("regressed.json"), baselinePath: fixture("base.json"),
                                     budgetPath: fixture("budget.json"), junitPath: "\(directory)/regressed.xml")
        XCTAssertEqual(try Check.run(regressed).exitStatus, 1)
        let improved = CheckRequest(currentPath: fixture("improved.json"), baselinePath: fixture("base.json"),
                                    junitPath: "\(directory)/improved.xml")
        XCTAssertEqual(try Check.run(improved).exitStatus, 0)
        let nothing = CheckRequest(currentPath: fixture("improved.json"), baselinePath: fixture("base.json"),
                                   settings: try ComparisonSettings.parse(minContentions: 1_000_000_000),
                                   junitPath: "\(directory)/nothing.xml", failIfNothingJudged: true)
        XCTAssertEqual(try Check.run(nothing).exitStatus, 1)
        XCTAssertEqual(try validate(["regressed", "improved", "nothing"].map { "\(directory)/\($0).xml" }), ["ok", "ok", "ok"])
    }

    /// The validator can fail: the previous output's `skipped` on `<testsuites>` is rejected, and so is
    /// a timestamp with a zone.
    func testTheSchemaRejectsWhatJunit10Forbids() throws {
        let skippedOnRoot = """
            <?xml version="1.0" encoding="UTF-8"?>
            <testsuites name="lockscope check" tests="1" failures="0" errors="0" skipped="0">
              <testsuite name="s" tests="1"><testcase classname="c" name="n" time="0"/></testsuite>
            </testsuites>
            """
        let zonedTimestamp = """
            <?xml version="1.0" encoding="UTF-8"?>
            <testsuites><testsuite name="s" tests="0" timestamp="2026-12-07T03:00:00Z"/></testsuites>
            """
        try Data(skippedOnRoot.utf8).write(to: URL(fileURLWithPath: "\(directory)/old.xml"))
        try Data(zonedTimestamp.utf8).write(to: URL(fileURLWithPath: "\(directory)/zoned.xml"))
        let verdicts = try validate(["\(directory)/old.xml", "\(directory)/zoned.xml"])
        XCTAssertEqual(verdicts.count, 2)
        XCTAssertTrue(verdicts.allSatisfy { $0.hasPrefix("invalid") }, "\(verdicts)")
    }

    /// A gate that judged nothing says so in JUnit: a `something judged` case, skipped, or failed when asked.
    func testNothingJudgedIsVisible() throws {
        for fail in [false, true] {
            let path = "\(directory)/nothing-\(fail).xml"
            let request = CheckRequest(currentPath: fixture("improved.json"), baselinePath: fixture("base.json"),
                                       settings: try ComparisonSettings.parse(minContentions: 1_000_000_000),
                                       junitPath: path, failIfNothingJudged: fail)
            let result = try Check.run(request)
            XCTAssertTrue(result.nothingJudged)
            XCTAssertEqual(result.exitStatus, fail ? 1 : 0)
            let xml = try String(contentsOfFile: path, encoding: .utf8)
            XCTAssertTrue(xml.contains(#"<testcase classname="lockscope check" name="something judged" time="0">"#), xml)
            XCTAssertTrue(xml.contains(fail ? "<failure" : "<skipped message=\"nothing judged"), xml)
            XCTAssertTrue(CheckReport.render(result).hasPrefix(fail ? "FAILED: nothing to judge" : "PASSED: nothing to judge"),
                          CheckReport.render(result))
            XCTAssertEqual(try validate([path]), ["ok"])
        }
    }
}
