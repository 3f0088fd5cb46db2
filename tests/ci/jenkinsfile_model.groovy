// Prints a Jenkinsfile's syntax tree as JSON without running it: compiled only to the CONVERSION
// phase (as parse_groovy.groovy does), then every method call with its arguments and closure body,
// every assignment (environment entries) and condition, so tests/ci/test_jenkins.py can read the
// declarative model (parameters, environment, stages, when, steps, post) the way Jenkins would.
//   groovy tests/ci/jenkinsfile_model.groovy jenkins/Jenkinsfile
import groovy.json.JsonOutput
import org.codehaus.groovy.ast.expr.*
import org.codehaus.groovy.ast.stmt.*
import org.codehaus.groovy.control.CompilationFailedException
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.Phases

def expr
def stmt

expr = { node ->
    if (node instanceof ConstantExpression) {
        return node.value instanceof String || node.value instanceof Boolean || node.value instanceof Number || node.value == null ?
            node.value : node.text
    }
    if (node instanceof GStringExpression) {
        return [gstring: node.verbatimText, strings: node.strings.collect { it.value }, values: node.values.collect { it.text }]
    }
    if (node instanceof ListExpression) {
        return node.expressions.collect { expr(it) }
    }
    if (node instanceof MapExpression) {
        return node.mapEntryExpressions.collectEntries { [(expr(it.keyExpression).toString()): expr(it.valueExpression)] }
    }
    if (node instanceof ClosureExpression) {
        return [closure: stmt(node.code)]
    }
    if (node instanceof MethodCallExpression) {
        def args = node.arguments instanceof TupleExpression ? node.arguments.expressions : [node.arguments]
        def named = [:]
        def positional = []
        args.each { a ->
            if (a instanceof NamedArgumentListExpression || a instanceof MapExpression) {
                named.putAll(expr(a))
            } else {
                positional << expr(a)
            }
        }
        return [call: node.methodAsString, named: named, args: positional, line: node.lineNumber]
    }
    if (node instanceof BinaryExpression && node.operation.text == '=') {
        return [assign: node.leftExpression.text, value: expr(node.rightExpression)]
    }
    if (node instanceof BinaryExpression) {
        return [binary: node.operation.text, left: expr(node.leftExpression), right: expr(node.rightExpression)]
    }
    return [expr: node.text]
}

stmt = { node ->
    if (node instanceof BlockStatement) {
        return node.statements.collect { stmt(it) }.flatten()
    }
    if (node instanceof ExpressionStatement) {
        return [expr(node.expression)]
    }
    if (node instanceof ReturnStatement) {
        return [[return: expr(node.expression)]]
    }
    if (node instanceof IfStatement) {
        return [[if: expr(node.booleanExpression.expression), then: stmt(node.ifBlock), else: stmt(node.elseBlock)]]
    }
    if (node instanceof EmptyStatement) {
        return []
    }
    return [[statement: node.text]]
}

if (args.length != 1) {
    System.err.println('usage: jenkinsfile_model.groovy JENKINSFILE')
    System.exit(2)
}
def unit = new CompilationUnit()
unit.addSource(new File(args[0]))
try {
    unit.compile(Phases.CONVERSION)
} catch (CompilationFailedException e) {
    System.err.println("${args[0]}: ${e.message}")
    System.exit(1)
}
def module = unit.AST.modules[0]
println(JsonOutput.toJson(stmt(module.statementBlock)))
