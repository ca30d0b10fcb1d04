package schemas_test

import (
	"fmt"

	"github.com/datamesh/datamesh/schemas"
)

func ExampleDecodeContract() {
	c, err := schemas.DecodeContract([]byte(`
kind: EventType
name: OrderShipped
aggregate: order
version: 1
schema:
  type: object
  required: [carrier]
  properties:
    carrier: {type: string}
    parcels: {type: integer, minimum: 1}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	v, err := schemas.Compile(c)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Key(), c.SchemaURI())
	for _, viol := range v.Validate([]byte(`{"parcels": 0}`)) {
		fmt.Printf("%q: %s\n", viol.Path, viol.Message)
	}
	// Output:
	// order.OrderShipped urn:datamesh:schema:order:OrderShipped:1
	// "": missing property 'carrier'
	// "/parcels": minimum: got 0, want 1
}
