// Parses Groovy files (a Jenkinsfile) without running them: compilation stops after the CONVERSION
// phase (syntax tree built), before any class is generated or any code executes.
//   groovy tests/ci/parse_groovy.groovy jenkins/Jenkinsfile
import org.codehaus.groovy.control.CompilationFailedException
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.Phases

if (args.length == 0) {
    System.err.println('usage: parse_groovy.groovy FILE...')
    System.exit(2)
}
int failed = 0
args.each { path ->
    def unit = new CompilationUnit()
    unit.addSource(new File(path))
    try {
        unit.compile(Phases.CONVERSION)
        println("parsed: ${path}")
    } catch (CompilationFailedException e) {
        System.err.println("${path}: ${e.message}")
        failed++
    }
}
System.exit(failed == 0 ? 0 : 1)
